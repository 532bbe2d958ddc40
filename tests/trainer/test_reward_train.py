"""Reward-model training: learns a synthetic preference, changes every parameter, resumes exactly."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainer.reward_helpers import marker_tasks, one_thread, tiny_reward_model, tiny_tokenizer
from trainer.common.checkpoint import rng_state, set_rng_state
from trainer.common.optim import lr_factor
from trainer.reward.config import RewardConfig
from trainer.reward.train import center_on_sft, evaluate_reward_model, score_tasks, train_reward_model

pytestmark = pytest.mark.usefixtures(one_thread.__name__)
FAST = RewardConfig(learning_rate=3e-3, batch_size=8, warmup_ratio=0.1, max_length=64)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_learns_marker_preference_to_90_percent(tokenizer) -> None:
    model = tiny_reward_model()
    seen: list[dict[str, float]] = []
    result = train_reward_model(
        FAST, model, tokenizer, marker_tasks(96, seed=0), on_metrics=lambda s, m: seen.append(m)
    )
    assert result.steps == result.total_steps == 12 and not result.stopped and len(seen) == 12
    assert {"loss/ranking", "rm/accuracy", "perf/tokens_per_s", "lr"} <= set(seen[-1])
    assert seen[-1]["loss/ranking"] < seen[0]["loss/ranking"]
    evaluation = evaluate_reward_model(model, tokenizer, marker_tasks(40, seed=99), max_length=64)
    assert evaluation.accuracy >= 0.9, evaluation
    assert set(evaluation.accuracy_by_k) <= {4, 5, 6} and evaluation.pairs > 100


def test_every_trainable_parameter_changes(tokenizer) -> None:
    model = tiny_reward_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = replace(FAST, batch_size=4, warmup_ratio=0.0)
    train_reward_model(cfg, model, tokenizer, marker_tasks(8, seed=1))
    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert unchanged == []


def _resume_cfg() -> RewardConfig:
    return replace(FAST, batch_size=3, grad_accum_steps=2, epochs=2, weight_by_agreement=True)


def test_killed_run_resumes_to_the_same_weights(tokenizer, tmp_path: Path) -> None:
    cfg, tasks = _resume_cfg(), marker_tasks(24, seed=2)
    reference = tiny_reward_model()
    full = train_reward_model(cfg, reference, tokenizer, tasks)
    assert full.steps == 8

    steps: list[int] = []
    first = tiny_reward_model()
    stopped = train_reward_model(
        cfg, first, tokenizer, tasks, checkpoint_dir=tmp_path / "ckpt", should_stop=lambda: len(steps) >= 3,
        on_metrics=lambda s, m: steps.append(s),
    )  # fmt: skip
    assert stopped.stopped and stopped.steps == 3

    def crash(step: int, metrics: dict[str, float]) -> None:
        if step == 6:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):  # a second kill, after the step-4 checkpoint
        train_reward_model(cfg, tiny_reward_model(seed=5), tokenizer, tasks, checkpoint_dir=tmp_path / "ckpt",
                           checkpoint_every=2, on_metrics=crash)  # fmt: skip
    resumed_steps: list[int] = []
    resumed = tiny_reward_model(seed=7)  # a fresh model with other weights: the checkpoint must restore them
    result = train_reward_model(
        cfg,
        resumed,
        tokenizer,
        tasks,
        checkpoint_dir=tmp_path / "ckpt",
        on_metrics=lambda s, m: resumed_steps.append(s),
    )
    assert resumed_steps == [5, 6, 7, 8] and result.steps == 8 and not result.stopped
    assert result.metrics == pytest.approx(full.metrics | {"perf/tokens_per_s": result.metrics["perf/tokens_per_s"]})
    for (name, p), q in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7, msg=name)
    again = train_reward_model(cfg, tiny_reward_model(), tokenizer, tasks, checkpoint_dir=tmp_path / "ckpt")
    assert again.steps == 8 and again.metrics == {}  # a requeue after the last step has nothing left to do


def test_resume_refuses_another_config(tokenizer, tmp_path: Path) -> None:
    cfg, tasks = _resume_cfg(), marker_tasks(12, seed=3)
    train_reward_model(
        cfg, tiny_reward_model(), tokenizer, tasks, checkpoint_dir=tmp_path / "c", should_stop=lambda: True
    )
    with pytest.raises(ValueError, match="learning_rate"):
        train_reward_model(
            replace(cfg, learning_rate=1e-4), tiny_reward_model(), tokenizer, tasks, checkpoint_dir=tmp_path / "c"
        )


def test_rng_state_round_trip() -> None:
    state = rng_state()
    drawn = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(state)
    assert (random.random(), np.random.rand()) == drawn[:2] and torch.equal(torch.rand(1), drawn[2])


def test_lr_schedule() -> None:
    factors = [lr_factor(s, warmup=2, total=10, decay="linear", min_ratio=0.0) for s in range(10)]
    assert factors[:3] == [0.5, 1.0, 1.0] and factors[-1] == pytest.approx(1 / 8)
    assert lr_factor(9, warmup=0, total=10, decay="cosine", min_ratio=0.1) > 0.1
    assert lr_factor(5, warmup=0, total=10, decay="constant", min_ratio=0.1) == 1.0


@pytest.mark.parametrize(
    "changes", [{"learning_rate": 0.0}, {"batch_size": 0}, {"warmup_ratio": 1.0}, {"decay": "step"}]
)
def test_config_rejects_bad_values(changes: dict) -> None:
    with pytest.raises(ValueError):
        RewardConfig(**changes)


def test_too_few_tasks_for_one_step(tokenizer) -> None:
    with pytest.raises(ValueError, match="no optimizer step"):
        train_reward_model(replace(FAST, grad_accum_steps=4), tiny_reward_model(), tokenizer, marker_tasks(3, seed=0))


def test_gradient_checkpointing_trains_to_the_same_weights(tokenizer) -> None:
    cfg, tasks = replace(FAST, batch_size=4), marker_tasks(8, seed=6)
    plain, checkpointed = tiny_reward_model(), tiny_reward_model()
    train_reward_model(cfg, plain, tokenizer, tasks)
    train_reward_model(replace(cfg, gradient_checkpointing=True), checkpointed, tokenizer, tasks)
    assert any(getattr(m, "gradient_checkpointing", False) for m in checkpointed.modules())
    for (name, p), q in zip(plain.state_dict().items(), checkpointed.state_dict().values(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)


def test_center_on_sft_samples(tokenizer) -> None:
    model = tiny_reward_model()
    samples = [(t.prompt, c) for t in marker_tasks(3, seed=8) for c in t.completions]
    offset = center_on_sft(model, tokenizer, samples, max_length=64)
    scored = score_tasks(model, tokenizer, marker_tasks(3, seed=8), max_length=64)
    mean = np.mean([r for s in scored for r in s.rewards])
    assert offset != 0.0 and abs(mean) < 1e-5
