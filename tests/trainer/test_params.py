"""One source of defaults per method: a job's params (app/schemas, what the web side validates) name every setting a
user chooses; the trainer's config takes those settings, and their defaults, from the params by name."""

from __future__ import annotations

import dataclasses

import pytest

from app.schemas.sft import TrainSftParams
from app.schemas.training import TrainPolicyParams, TrainRewardParams
from trainer.common.params import config_from_params, job_default, shared_fields
from trainer.ppo.config import PPOConfig
from trainer.reward.config import RewardConfig
from trainer.sft.train import SftConfig

# Params the trainer does not see: they choose versions, data, processes and checkpoints in the job itself.
JOB_ONLY = {
    TrainPolicyParams: {
        "policy_version",
        "reward_version",
        "max_prompts",
        "processes",
        "checkpoint_every",
        "lora",
        "max_memory_gb",
    },
    TrainRewardParams: {
        "sft_version",
        "heldout_labeler_share",
        "processes",
        "checkpoint_every",
        "active_only",
        "min_agreement",
        "model_versions",
        "exclude_flags",
        "since",
        "until",
        "lora",
        "max_memory_gb",
    },  # fmt: skip
    TrainSftParams: {
        "base_version",
        "active_only",
        "include_best_ranked",
        "since",
        "until",
        "processes",
        "checkpoint_every",
        "lora",
        "max_memory_gb",
    },  # fmt: skip
}
CASES = [(PPOConfig, TrainPolicyParams), (RewardConfig, TrainRewardParams), (SftConfig, TrainSftParams)]


@pytest.mark.parametrize(("config", "params"), CASES)
def test_every_job_setting_reaches_the_trainer_with_the_jobs_default(config, params) -> None:
    shared = set(shared_fields(config, params))
    assert set(params.model_fields) - shared == JOB_ONLY[params], "a new job param must reach the trainer config"
    defaults, job = config(), params()
    for name in shared:
        assert getattr(defaults, name) == getattr(job, name), name
        field = next(f for f in dataclasses.fields(config) if f.name == name)
        assert field.default == job_default(params, name), f"{config.__name__}.{name} has a default of its own"


def test_ppo_config_from_params() -> None:
    params = TrainPolicyParams(steps=5, batch_size=8, minibatches=2, learning_rate=1e-3, kl_coef=0.3, seed=7)
    cfg = PPOConfig.from_params(params)
    assert (cfg.steps, cfg.batch_size, cfg.minibatches, cfg.learning_rate, cfg.kl_coef, cfg.seed) == (
        5, 8, 2, 1e-3, 0.3, 7,
    )  # fmt: skip
    assert cfg.generation_batch_size == 8  # at most 64 prompts per generate call, never more than a batch
    assert PPOConfig.from_params(TrainPolicyParams(batch_size=256)).generation_batch_size == 64
    # The job's defaults are InstructGPT's (beta 0.02), which the trainer used to override with its own 0.05.
    assert PPOConfig().kl_coef == TrainPolicyParams().kl_coef == 0.02


def test_reward_config_from_params_with_the_jobs_smaller_batch() -> None:
    params = TrainRewardParams(learning_rate=3e-5, grad_accum_steps=2, shared_prompt=True, max_length=128)
    cfg = RewardConfig.from_params(params, batch_size=3)
    assert (cfg.learning_rate, cfg.grad_accum_steps, cfg.shared_prompt, cfg.max_length) == (3e-5, 2, True, 128)
    assert cfg.batch_size == 3 and cfg.decay == "cosine"  # an override, and a trainer knob no job exposes


def test_config_from_params_copies_by_name_only() -> None:
    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0
        other: str = "kept"

    assert config_from_params(Config, TrainRewardParams(seed=3)) == Config(seed=3, other="kept")
    with pytest.raises(KeyError):
        job_default(TrainRewardParams, "no_such_param")
