"""Rounds of the loop: what a researcher sends to start one, and what the API shows of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.models import RoundStatus, RoundStep
from app.schemas.dpo import TrainDpoParams
from app.schemas.fields import Whole
from app.schemas.jobs import SampleParams
from app.schemas.params import JobParams
from app.schemas.sft import TrainSftParams
from app.schemas.training import EvaluateParams, TrainPolicyParams, TrainRewardParams

FILLED_BY_THE_ROUND = ("policy_version", "reward_version", "reference_version")
POLICY_METHODS: dict[str, type[JobParams]] = {"ppo": TrainPolicyParams, "dpo": TrainDpoParams}


def _no_versions(params: dict[str, Any], step: str) -> None:
    named = [k for k in FILLED_BY_THE_ROUND if k in params]
    if named:
        raise ValueError(f"{step}: {', '.join(named)} is set by the round (the versions its earlier steps made)")


class RoundParams(BaseModel):
    """One round: [SFT ->] sample -> rank -> reward model -> PPO (or DPO) -> evaluation, each step's params as its
    job takes them."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    sft: dict[str, Any] | None = None
    """Params of a train_sft job that begins the round when accepted demonstrations exist that no SFT model was
    trained on yet (the round then samples from the new SFT model); None: the round never fine-tunes."""
    sample: dict[str, Any] = Field(default_factory=lambda: {"n_unlabeled": 20, "k": 4, "max_new_tokens": 96})
    """Params of the sampling job (its policy is the newest policy, else the newest SFT model)."""
    min_new_rankings: Whole = Field(default=20, ge=1, le=10_000_000)
    """The reward model is trained once the round's new tasks have this many rankings."""
    reward: dict[str, Any] = Field(default_factory=dict)
    """Params of the train_reward job (defaults when empty)."""
    train_reward: bool | None = None
    """Train a reward model in this round; default: yes for PPO (it needs one), no for DPO (evaluation still uses
    the newest reward model when one exists)."""
    policy: dict[str, Any] = Field(default_factory=lambda: {"method": "ppo"})
    """``method`` (ppo, the default, or dpo) and the params of its job (train_policy or train_dpo); its start is the
    round's sampling policy, PPO's reward model the round's new one."""
    evaluate: dict[str, Any] = Field(default_factory=dict)
    """Params of the evaluate job (the new policy against its SFT ancestor, under the new reward model)."""

    @field_validator("sample")
    @classmethod
    def _sample(cls, params: dict[str, Any]) -> dict[str, Any]:
        _no_versions(params, "sample")
        return SampleParams.from_params(params).model_dump(mode="json", exclude_none=True, exclude={"policy_version"})

    @field_validator("reward")
    @classmethod
    def _reward(cls, params: dict[str, Any]) -> dict[str, Any]:
        TrainRewardParams.from_params(params)
        return params

    @field_validator("sft")
    @classmethod
    def _sft(cls, params: dict[str, Any] | None) -> dict[str, Any] | None:
        if params is not None:
            TrainSftParams.from_params(params)
        return params

    @field_validator("policy")
    @classmethod
    def _policy(cls, params: dict[str, Any]) -> dict[str, Any]:
        _no_versions(params, "policy")
        method = params.get("method", "ppo")
        if method not in POLICY_METHODS:
            raise ValueError(f"policy.method must be ppo or dpo, got {method!r}")
        POLICY_METHODS[method].from_params({k: v for k, v in params.items() if k != "method"})
        return {**params, "method": method}

    @property
    def method(self) -> str:
        """How the round trains its policy: ppo or dpo."""
        return str(self.policy.get("method", "ppo"))

    @property
    def trains_reward(self) -> bool:
        """Whether the round trains a reward model (PPO always does)."""
        return self.method == "ppo" or bool(self.train_reward)

    @model_validator(mode="after")
    def _ppo_needs_reward(self) -> RoundParams:
        if self.method == "ppo" and self.train_reward is False:
            raise ValueError("a PPO round trains a reward model (train_reward cannot be false with method ppo)")
        return self

    @field_validator("evaluate")
    @classmethod
    def _evaluate(cls, params: dict[str, Any]) -> dict[str, Any]:
        _no_versions(params, "evaluate")
        EvaluateParams.from_params(params)
        return params


class RoundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: RoundStatus
    step: RoundStep
    params: dict[str, Any]
    start_policy_id: int | None
    sft_job_id: int | None
    sample_job_id: int | None
    reward_job_id: int | None
    policy_job_id: int | None
    evaluate_job_id: int | None
    reward_model_id: int | None
    policy_model_id: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime | None
