"""bench/ppo_vs_trl.py builds the architectures the PPO issue names, and refuses batch splits that do not divide."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ppo_vs_trl.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("ppo_vs_trl", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("model", "low", "high"), [("smollm2-135m", 134e6, 136e6), ("smollm2-1b", 1.0e9, 1.2e9)])
def test_presets_have_the_named_size(model, low, high):
    from transformers import LlamaForCausalLM

    bench = load_bench()
    policy_config, reward_config = bench.model_configs(bench.parse_args(["--model", model]), 384)
    assert reward_config is policy_config  # reward and value models share the policy's architecture
    assert policy_config.vocab_size == 49152
    with torch.device("meta"):
        n = sum(p.numel() for p in LlamaForCausalLM(policy_config).parameters())
    assert low < n < high


def test_tiny_default_keeps_the_small_reward_model():
    bench = load_bench()
    policy_config, reward_config = bench.model_configs(bench.parse_args([]), 384)
    assert (policy_config.hidden_size, reward_config.hidden_size, policy_config.vocab_size) == (64, 32, 384)


def test_batch_splits_must_divide():
    bench = load_bench()
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch-size", "16", "--micro-batches", "4", "--minibatches", "3"])
    args = bench.parse_args(["--batch-size", "64", "--micro-batches", "8", "--minibatches", "4"])
    assert (args.micro_batches // args.minibatches, args.batch_size // args.micro_batches) == (2, 8)
