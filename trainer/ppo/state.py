"""PPO state that outlives one step: KL coefficient controllers and running score statistics.

A PPO checkpoint (`trainer.common.checkpoint.save_state`) is one folder written whole or not at all holding
``ppo_state.pt``:
policy and value weights, the optimizer and scheduler, the KL controller, the running score statistics, the RNG
states and the number of PPO steps done (the data position: prompts, generation seeds and minibatch order are pure
functions of the seed and the step).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trainer.common.distributed import sum_over_processes

STATE_FILE = "ppo_state.pt"
"""The PPO checkpoint's file (written by `trainer.common.checkpoint.save_state`)."""


class FixedKLController:
    """A constant KL coefficient beta."""

    def __init__(self, kl_coef: float) -> None:
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing changes."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019): ``beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon``."""

    def __init__(self, kl_coef: float, target: float, horizon: int) -> None:
        super().__init__(kl_coef)
        self.target, self.horizon = target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        """Move beta towards keeping the per-episode KL at the target; `n_steps` episodes were just seen."""
        proportional_error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon


class RunningMoments:
    """Running mean and standard deviation of every score seen (Chan et al.'s parallel update), for whitening."""

    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 0.0

    @property
    def std(self) -> float:
        """Sample standard deviation of everything seen (1 before two values arrived)."""
        return math.sqrt(self.var * self.count / (self.count - 1)) if self.count > 1 else 1.0

    def update(self, values: Tensor) -> None:
        """Add a batch; under torch.distributed the batch is every process's values (so all ranks agree)."""
        sums = torch.stack([values.new_tensor(values.numel()), values.sum(), (values**2).sum()]).double()
        n, total, total_sq = sum_over_processes(sums).tolist()
        if n == 0:
            return
        batch_mean = total / n
        batch_var = max(total_sq / n - batch_mean**2, 0.0)
        delta, new_count = batch_mean - self.mean, self.count + n
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / new_count
        self.mean += delta * n / new_count
        self.var, self.count = m2 / new_count, new_count

    def whiten(self, values: Tensor) -> Tensor:
        """``(values - mean) / std`` with the running statistics."""
        return (values - self.mean) / max(self.std, 1e-8)

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.mean, self.var, self.count = float(state["mean"]), float(state["var"]), float(state["count"])
