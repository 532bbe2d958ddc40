"""PPO state that outlives one step: KL coefficient controllers, running score statistics, and checkpoints.

A checkpoint is one folder written whole or not at all (`app.storage.atomic_dir`) holding ``ppo_state.pt``:
policy and value weights, the optimizer and scheduler, the KL controller, the running score statistics, the RNG
states and the number of PPO steps done (the data position: prompts, generation seeds and minibatch order are pure
functions of the seed and the step).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from app.storage import atomic_dir
from trainer.reward_checkpoint import rng_state, set_rng_state

STATE_FILE = "ppo_state.pt"


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
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
        n, total, total_sq = sums.tolist()
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


def has_checkpoint(path: Path | None) -> bool:
    """True when `path` holds a finished PPO checkpoint."""
    return path is not None and (Path(path) / STATE_FILE).is_file()


def save_ppo_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (module / optimizer / controller state dicts, step, config) plus the RNG states atomically."""
    with atomic_dir(Path(path), replace=True) as tmp:
        torch.save({**state, "rng": rng_state()}, tmp / STATE_FILE)


def load_ppo_checkpoint(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint written with the same `config`, restore the RNG states, and return the state."""
    state: dict[str, Any] = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
    if state["config"] != config:
        changed = sorted(k for k in config if state["config"].get(k) != config[k])
        raise ValueError(f"checkpoint {path} was written with a different config ({', '.join(changed)})")
    set_rng_state(state["rng"])
    return state
