"""The shared optimizer-step loop: steps per epoch, metrics from each step, and a stop + resume that lands exactly
where an uninterrupted run does (the per-trainer resume tests check the same through each trainer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from trainer.common.launch import RunFolder
from trainer.common.loop import run_training, steps_per_epoch


@pytest.mark.parametrize(
    ("items", "batch", "per_step", "expected"),
    [(10, 4, 1, 3), (10, 4, 2, 1), (15, 4, 2, 2), (8, 4, 2, 1), (3, 4, 1, 1), (3, 4, 2, 0), (0, 4, 1, 0)],
)
def test_steps_per_epoch_counts_full_steps_of_possibly_short_batches(items, batch, per_step, expected) -> None:
    assert steps_per_epoch(items, batch, per_step) == expected


@dataclass(frozen=True)
class _Cfg:
    learning_rate: float = 0.05
    weight_decay: float = 0.0
    warmup_ratio: float = 0.25
    min_lr_ratio: float = 0.1
    gradient_checkpointing: bool = False
    seed: int = 3


def _train(checkpoint_dir: Path | None, stop_after: int | None = None) -> tuple[torch.Tensor, list[float], int]:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(8, 6, 4)  # 8 steps of 6 examples
    y = x.sum(-1, keepdim=True)
    losses: list[float] = []

    def step_fn(step: int, net: nn.Module, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        loss = ((net(x[step]) - y[step]) ** 2).mean() + 0.0 * torch.rand(())  # the seeded generator is part of it
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.detach()

    def metrics_fn(loss: torch.Tensor, seconds: float, lr: float, epoch: float) -> dict[str, float]:
        return {"loss": float(loss), "lr": lr, "epoch": epoch}

    result = run_training(
        model, model, _Cfg(), total_steps=8, per_epoch=4, config={"what": "toy"}, step_fn=step_fn,
        metrics_fn=metrics_fn, on_metrics=lambda step, m: losses.append(m["loss"]), checkpoint_dir=checkpoint_dir,
        checkpoint_every=2, should_stop=(lambda: len(losses) >= stop_after) if stop_after else None,
    )  # fmt: skip
    assert result.total_steps == 8
    return model.weight.detach().clone(), losses, result.steps


def test_a_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    straight, losses, steps = _train(None)
    assert steps == 8 and len(losses) == 8
    _, first, stopped_at = _train(tmp_path / "ckpt", stop_after=3)
    assert stopped_at == 3  # the stop is agreed before step 4: checkpoint, return
    resumed, rest, done = _train(tmp_path / "ckpt")
    assert done == 8 and len(first) + len(rest) == 8
    assert torch.allclose(resumed, straight) and first + rest == pytest.approx(losses)


def test_a_run_folder_drops_the_stop_file_a_stopped_attempt_left(tmp_path: Path) -> None:
    run = RunFolder.beside(tmp_path / "checkpoint")
    run.root.mkdir(parents=True)
    run.stop_file.touch()
    again = RunFolder.beside(tmp_path / "checkpoint")
    assert again.root == tmp_path / "checkpoint-ddp" and not again.stop_file.exists()
    assert again.out_dir == again.root / "trained"
    again.remove()
    assert not again.root.exists()
