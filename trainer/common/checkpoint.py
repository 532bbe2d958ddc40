"""Training checkpoints that resume exactly: weights, optimizer, scheduler, RNG states and the data position.

A checkpoint is one folder, written whole or not at all (`app.storage.atomic_dir`), holding one state file
(``trainer_state.pt`` for a model + optimizer + scheduler trainer, PPO its own). The data position is the number of
optimizer steps done: every trainer derives its batch order from (seed, step), so the step count locates the next
batch. A checkpoint written with another config is refused with the fields that differ.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.storage import atomic_dir

STATE_FILE = "trainer_state.pt"


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states, in types `torch.load(weights_only=True)` reads."""
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    np_state["state"] = dict(np_state["state"], key=np.asarray(np_state["state"]["key"], dtype=np.uint32))
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def has_checkpoint(path: Path | None, state_file: str = STATE_FILE) -> bool:
    """True when `path` holds a finished checkpoint."""
    return path is not None and (Path(path) / state_file).is_file()


def save_state(path: Path, state: dict[str, Any], *, state_file: str = STATE_FILE) -> None:
    """Write `state` (state dicts, step, config) plus the RNG states, replacing an older checkpoint atomically."""
    with atomic_dir(Path(path), replace=True) as tmp:
        torch.save({**state, "rng": rng_state()}, tmp / state_file)


def load_state(path: Path, config: dict[str, Any], *, state_file: str = STATE_FILE) -> dict[str, Any]:
    """Read a checkpoint written with the same `config`, restore the RNG states, and return the state."""
    state: dict[str, Any] = torch.load(Path(path) / state_file, map_location="cpu", weights_only=True)
    if state["config"] != config:
        changed = sorted(k for k in config if state["config"].get(k) != config[k])
        raise ValueError(f"checkpoint {path} was written with a different config ({', '.join(changed)})")
    set_rng_state(state["rng"])
    return state


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    config: dict[str, Any],
) -> None:
    """Write a one-model trainer's full state after `step` optimizer steps."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "config": config,
    }
    save_state(path, state)


def load_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: dict[str, Any],
) -> int:
    """Restore everything `save_checkpoint` wrote; return the step to continue from."""
    state = load_state(path, config)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"])
