"""bench/lora_memory.py: its architecture at 30 layers is SmolLM2-135M, and its 80 GB extrapolation is linear."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "lora_memory.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("lora_memory", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_thirty_layers_are_smollm2_135m():
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        n = sum(p.numel() for p in LlamaForCausalLM(load_bench()._config(30)).parameters())
    assert 134e6 < n < 136e6


def test_largest_model_extrapolates_per_parameter_and_per_token():
    bench = load_bench()
    mib = 2**20

    # 40 bytes per parameter, 1 MiB per token, 100 MiB fixed
    def case(params, tokens):
        return {"peak_mib": (40 * params + tokens * mib) / mib + 100, "policy_params": params, "episode_tokens": tokens}

    base, bigger, more = case(10_000_000, 100), case(20_000_000, 100), case(10_000_000, 200)
    got = bench.largest_model(base, bigger, more, tokens=1000)
    assert got == pytest.approx((bench.GPU_BYTES - 100 * mib - 1000 * mib) / 40)
