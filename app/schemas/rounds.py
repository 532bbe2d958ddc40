"""Rounds of the loop: what a researcher sends to start one, and what the API shows of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models import RoundStatus, RoundStep
from app.schemas.jobs import SampleParams
from app.schemas.training import EvaluateParams, TrainPolicyParams, TrainRewardParams

FILLED_BY_THE_ROUND = ("policy_version", "reward_version")


def _no_versions(params: dict[str, Any], step: str) -> None:
    named = [k for k in FILLED_BY_THE_ROUND if k in params]
    if named:
        raise ValueError(f"{step}: {', '.join(named)} is set by the round (the versions its earlier steps made)")


class RoundParams(BaseModel):
    """One round: sample -> rank -> reward model -> PPO -> evaluation, each step's params as its job takes them."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    sample: dict[str, Any] = Field(default_factory=lambda: {"n_unlabeled": 20, "k": 4, "max_new_tokens": 96})
    """Params of the sampling job (its policy is the newest policy, else the newest SFT model)."""
    min_new_rankings: int = Field(default=20, ge=1, le=10_000_000)
    """The reward model is trained once the round's new tasks have this many rankings."""
    reward: dict[str, Any] = Field(default_factory=dict)
    """Params of the train_reward job (defaults when empty)."""
    policy: dict[str, Any] = Field(default_factory=dict)
    """Params of the train_policy job; its start is the round's sampling policy, its reward model the new one."""
    evaluate: dict[str, Any] = Field(default_factory=dict)
    """Params of the evaluate job (the new policy against its SFT ancestor, under the new reward model)."""

    @field_validator("sample")
    @classmethod
    def _sample(cls, params: dict[str, Any]) -> dict[str, Any]:
        _no_versions(params, "sample")
        return SampleParams(**params).model_dump(mode="json", exclude_none=True, exclude={"policy_version"})

    @field_validator("reward")
    @classmethod
    def _reward(cls, params: dict[str, Any]) -> dict[str, Any]:
        TrainRewardParams(**params)
        return params

    @field_validator("policy")
    @classmethod
    def _policy(cls, params: dict[str, Any]) -> dict[str, Any]:
        _no_versions(params, "policy")
        TrainPolicyParams(**params)
        return params

    @field_validator("evaluate")
    @classmethod
    def _evaluate(cls, params: dict[str, Any]) -> dict[str, Any]:
        _no_versions(params, "evaluate")
        EvaluateParams(**params)
        return params


class RoundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: RoundStatus
    step: RoundStep
    params: dict[str, Any]
    start_policy_id: int | None
    sample_job_id: int | None
    reward_job_id: int | None
    policy_job_id: int | None
    evaluate_job_id: int | None
    reward_model_id: int | None
    policy_model_id: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime | None
