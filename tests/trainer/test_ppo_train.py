"""PPO end to end on a tiny random policy with a programmatic reward (response tokens from a marker set)."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.trainer.ppo_helpers import CFG, PROMPTS, TOKENIZER, marker_reward, tiny_policy, tiny_value_model
from tests.trainer.reward_helpers import one_thread
from trainer.ppo.config import PPOConfig
from trainer.ppo.state import STATE_FILE
from trainer.ppo.train import train_policy

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


def _train(cfg: PPOConfig, **kwargs) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    policy = tiny_policy(dropout=True)  # the trainer must switch dropout off
    history: list[dict[str, float]] = []
    train_policy(
        cfg, policy, tiny_policy(dropout=True), tiny_value_model(), marker_reward, PROMPTS, TOKENIZER,
        on_metrics=lambda step, m: history.append(m), **kwargs,
    )  # fmt: skip
    return policy, history


def test_reward_rises_kl_bounded_ratio_one_kl_zero_first() -> None:
    policy, history = _train(CFG)
    assert len(history) == CFG.steps
    assert history[0]["objective/kl"] == 0.0  # policy == reference before the first update
    assert all(m["policy/first_max_abs_log_ratio"] == 0.0 for m in history)  # PPO ratio exactly 1, every step
    first = sum(m["objective/scores"] for m in history[:5]) / 5
    last = sum(m["objective/scores"] for m in history[-5:]) / 5
    assert last > first + 0.1, (first, last)
    assert max(m["objective/kl"] for m in history) < 5.0
    for key in ("policy/clipfrac", "policy/approx_kl", "loss/value", "value/explained_variance",
                "objective/entropy", "episode/eos_rate", "episode/length", "perf/episodes_per_s",
                "perf/generation_s", "perf/scoring_s", "perf/update_s"):  # fmt: skip
        assert key in history[-1]
    assert history[-1]["lr"] < history[0]["lr"] == CFG.learning_rate  # annealed


def test_killed_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    cfg = replace(CFG, steps=4, adaptive_kl=True, kl_horizon=100, no_eos_penalty=0.5)
    whole, whole_history = _train(cfg)

    def kill(step: int, metrics: dict[str, float]) -> None:
        if step == 3:
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_policy(
            cfg, tiny_policy(), tiny_policy(), tiny_value_model(), marker_reward, PROMPTS, TOKENIZER,
            on_metrics=kill, checkpoint_dir=ckpt, checkpoint_every=2,
        )  # fmt: skip
    assert torch.load(ckpt / STATE_FILE, weights_only=True)["step"] == 2
    resumed, history = _train(cfg, checkpoint_dir=ckpt, checkpoint_every=2)
    assert [m["objective/scores"] for m in history] == [m["objective/scores"] for m in whole_history[2:]]
    assert history[-1]["objective/kl_coef"] == whole_history[-1]["objective/kl_coef"] != cfg.kl_coef
    for name, p in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], p, rtol=0, atol=0, msg=name)


def test_should_stop_checkpoints_and_ptx_is_logged(tmp_path: Path) -> None:
    cfg = replace(CFG, steps=3, ptx_coef=0.5, ptx_batch_size=2, epochs=1)
    texts = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France."]
    calls = iter([False, True])
    _, history = _train(cfg, ptx_texts=texts, checkpoint_dir=tmp_path / "c", should_stop=lambda: next(calls))
    assert len(history) == 1 and history[0]["loss/ptx"] > 0
    assert torch.load(tmp_path / "c" / STATE_FILE, weights_only=True)["step"] == 1
    with pytest.raises(ValueError, match="ptx_texts"):
        _train(cfg)


def test_config_checks() -> None:
    with pytest.raises(ValueError):
        PPOConfig(batch_size=10, minibatches=4)
    with pytest.raises(ValueError):
        PPOConfig(temperature=0)
