"""PPO's settings (one dataclass, a docstring per field).

The settings a `train_policy` job exposes take their defaults from its params (`TrainPolicyParams`, the one source:
`trainer.common.params`); `PPOConfig.from_params` builds the config from a job's validated params. The rest are
trainer knobs with their own defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.schemas.training import TrainPolicyParams
from trainer.common.logprobs import DEFAULT_CHUNK_TOKENS
from trainer.common.params import config_from_params, job_default

MAX_GENERATION_BATCH = 64
"""Prompts per generate call at most, when built from a job's params."""


def _job(name: str) -> Any:
    return job_default(TrainPolicyParams, name)


@dataclass(frozen=True)
class PPOConfig:
    """How the policy is trained with PPO."""

    steps: int = _job("steps")
    """PPO steps (rollout + update)."""
    batch_size: int = _job("batch_size")
    """Episodes per step, all processes together."""
    minibatches: int = _job("minibatches")
    """Optimizer steps per epoch over one batch."""
    grad_accum: int = 1
    """Micro-batches per minibatch on each process."""
    epochs: int = _job("epochs")
    """Passes over each batch."""
    learning_rate: float = _job("learning_rate")
    """Adam learning rate of the policy (annealed linearly to 0 when `anneal_lr`)."""
    value_lr: float | None = None
    """Adam learning rate of the value model; None = `learning_rate`."""
    adam_eps: float = 1e-5
    """Adam epsilon (1e-5, as in the PPO implementations)."""
    anneal_lr: bool = True
    """Decay the learning rates linearly to 0 over `steps`."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm of policy and value together; None disables it."""
    response_length: int = _job("response_length")
    """Most tokens sampled per response, EOS included."""
    max_prompt_length: int = 512
    """Prompt tokens kept (from the end) after the chat template."""
    temperature: float = _job("temperature")
    """Sampling temperature; log-probs divide the logits by it too."""
    kl_coef: float = _job("kl_coef")
    """Initial (or fixed) beta of the per-token penalty ``-beta * (log pi - log pi_ref)``."""
    adaptive_kl: bool = _job("adaptive_kl")
    """Adapt beta towards `kl_target` (Ziegler et al. 2019)."""
    kl_target: float = _job("kl_target")
    """Target per-episode KL for the adaptive controller (nats)."""
    kl_horizon: int = 10_000
    """Episodes over which the adaptive controller closes the gap."""
    kl_estimator: Literal["k1", "k3"] = "k1"
    """Per-token KL estimate in the reward: k1 = log ratio, k3 = (r - 1) - log r."""
    gamma: float = 1.0
    """Discount over response tokens."""
    lam: float = 0.95
    """GAE lambda."""
    cliprange: float = _job("cliprange")
    """PPO ratio clip epsilon."""
    cliprange_value: float = 0.2
    """Value clip around the rollout-time values."""
    vf_coef: float = _job("vf_coef")
    """Weight of the value loss."""
    whiten_scores: bool = True
    """Whiten scores with running mean/std over all steps (the statistics are checkpointed)."""
    whiten_advantages: bool = True
    """Whiten advantages over each batch."""
    no_eos_penalty: float | None = _job("no_eos_penalty")
    """Subtracted from the score of responses cut by `response_length` before EOS; None = no penalty."""
    ptx_coef: float = _job("ptx_coef")
    """PPO-ptx gamma: weight of the LM loss on `ptx_texts` (0 = off)."""
    ptx_batch_size: int = 4
    """PPO-ptx texts per micro-batch."""
    ptx_max_length: int = 512
    """PPO-ptx tokens kept per text."""
    generation_batch_size: int = 64
    """Prompts per generate call."""
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    """Tokens per LM-head chunk in log-prob passes (memory is chunk_tokens * vocabulary floats)."""
    bf16: bool = True
    """bf16 autocast for generation, scoring and the update on CUDA (weights and optimizer stay as loaded);
    on CPU only with `RANKLAB_CPU_BF16`."""
    cache_implementation: Literal["static", "dynamic"] | None = None
    """KV cache for generation; "static" lets CUDA compile the decode step."""
    seed: int = _job("seed")
    """Seeds prompt order, generation, minibatch order and every generator."""

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1 and self.epochs >= 1, "steps and epochs must be >= 1"),
            (self.batch_size >= 1 and self.minibatches >= 1 and self.grad_accum >= 1, "sizes must be >= 1"),
            (self.batch_size % (self.minibatches * self.grad_accum) == 0, "batch_size % (minibatches*grad_accum)"),
            (self.learning_rate > 0 and self.adam_eps > 0, "learning_rate and adam_eps must be > 0"),
            (self.temperature > 0, "temperature must be > 0 (PPO samples)"),
            (self.response_length >= 1 and self.max_prompt_length >= 1, "lengths must be >= 1"),
            (self.kl_coef >= 0 and self.kl_target > 0 and self.kl_horizon > 0, "bad KL settings"),
            (0 < self.gamma <= 1 and 0 <= self.lam <= 1, "gamma in (0, 1], lam in [0, 1]"),
            (self.cliprange > 0 and self.cliprange_value > 0, "clip ranges must be > 0"),
            (self.kl_estimator in ("k1", "k3"), f"unknown kl_estimator {self.kl_estimator!r}"),
            (self.ptx_coef >= 0 and self.ptx_batch_size >= 1, "ptx_coef >= 0, ptx_batch_size >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def from_params(cls, params: TrainPolicyParams, **overrides: Any) -> PPOConfig:
        """The config of a `train_policy` job: its params by name, generation in batches of at most 64 prompts."""
        return config_from_params(cls, params, generation_batch_size=min(MAX_GENERATION_BATCH, params.batch_size),
                                  **overrides)  # fmt: skip
