"""bf16 on a CPU (`RANKLAB_CPU_BF16`): off unless the setting says so; with it, the trainers' matrix products, the
sampling job's and the measurements' generation run in bf16 while the weights stay float32, and a training run
still learns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.config import get_settings
from tests.trainer.reward_helpers import marker_tasks, tiny_reward_model, tiny_tokenizer
from trainer.common.precision import bf16_autocast, bf16_device, cpu_bf16_autocast
from trainer.reward.config import RewardConfig
from trainer.reward.train import evaluate_reward_model, train_reward_model

CPU = torch.device("cpu")


@pytest.fixture
def cpu_bf16(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RANKLAB_CPU_BF16", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _matmul_dtype(context: torch.autocast) -> torch.dtype:
    with context:
        return torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype


class MatmulDtypes:
    """Records the output dtype of every `nn.Linear` of a model while it runs."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seen: set[torch.dtype] = set()
        self.hooks = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]

    def _hook(self, _module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self.seen.add(output.dtype)

    def close(self) -> None:
        for hook in self.hooks:
            hook.remove()


def test_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANKLAB_CPU_BF16", raising=False)
    get_settings.cache_clear()
    assert not bf16_device(CPU)
    assert _matmul_dtype(bf16_autocast(True, CPU)) == torch.float32
    assert _matmul_dtype(cpu_bf16_autocast("cpu")) == torch.float32


def test_the_setting_turns_bf16_on_for_the_cpu(cpu_bf16: None) -> None:
    assert bf16_device(CPU) and bf16_device(torch.device("cuda"))
    assert _matmul_dtype(bf16_autocast(True, CPU)) == torch.bfloat16
    assert _matmul_dtype(cpu_bf16_autocast("cpu")) == torch.bfloat16
    assert _matmul_dtype(bf16_autocast(False, CPU)) == torch.float32  # a job's own bf16=False still wins


def test_reward_training_runs_in_bf16_and_still_learns(cpu_bf16: None) -> None:
    torch.manual_seed(0)
    tokenizer, model = tiny_tokenizer(), tiny_reward_model()
    watch = MatmulDtypes(model)
    cfg = RewardConfig(learning_rate=3e-3, batch_size=8, warmup_ratio=0.1, max_length=64)
    train_reward_model(cfg, model, tokenizer, marker_tasks(96, seed=0))
    watch.close()
    assert watch.seen == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # master weights stay float32
    assert evaluate_reward_model(model, tokenizer, marker_tasks(40, seed=99), max_length=64).accuracy >= 0.9


def test_sampling_runs_in_bf16_with_the_setting(cpu_bf16: None, tmp_path: Path) -> None:
    from trainer.common.generation import sample_responses
    from trainer.common.models import load_policy
    from trainer.common.tiny import build_tiny_model
    from trainer.sampling.completions import SamplingConfig, generate_completions

    model, tokenizer = load_policy(build_tiny_model(tmp_path / "tiny", seed=0), device="cpu")
    watch = MatmulDtypes(model)
    samples = sample_responses(model, tokenizer, [[{"role": "user", "content": "Hi"}]] * 3, n=2, max_new_tokens=5,
                               temperature=1.0, eos_ids=[], seed=0)  # fmt: skip
    assert watch.seen == {torch.bfloat16} and len(samples.texts) == 6
    watch.seen.clear()
    job = generate_completions(model, tokenizer, ["Hi", "Bye"], SamplingConfig(k=4, max_new_tokens=5, batch_size=4))
    watch.close()
    assert watch.seen == {torch.bfloat16} and [len(row) for row in job.completions] == [4, 4]  # the `sample` job
