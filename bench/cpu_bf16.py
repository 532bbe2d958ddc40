"""bf16 autocast on a CPU (`RANKLAB_CPU_BF16`) against float32: a training step, a forward pass and sampling.

    .venv/bin/python bench/cpu_bf16.py --json /tmp/cpu_bf16.json             # SmolLM2-135M's shape (the record)
    .venv/bin/python bench/cpu_bf16.py --model tiny --repeats 1               # a smoke run

The model is SmolLM2-135M's architecture built in code with random weights (`bench/common.MODELS`). Each case runs
through the trainers' own switch (`trainer.common.precision`) with the setting off and on, alternating, and the
median of `--repeats` is kept: a training step (forward, backward and AdamW over a batch of K=8 answers of 64
tokens, as the reward model and DPO take them), a no-grad forward pass of the same batch (reference log-probs,
scoring), and sampling 32 new tokens for 64 prompts with the KV cache (the `sample` job). The ratio is float32 time
over bf16 time: above 1, bf16 is faster. CPUs without AMX or AVX512-BF16 units show ratios under 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MODELS  # noqa: E402


def cpu_flags() -> list[str]:
    path = Path("/proc/cpuinfo")
    flags = set(path.read_text().split()) if path.exists() else set()
    return sorted(flags & {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f"})


def cases(model: torch.nn.Module, batch: int, tokens: int, vocab: int) -> dict[str, object]:
    from trainer.common.precision import bf16_autocast, cpu_bf16_autocast

    ids = torch.randint(0, vocab, (batch, tokens))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    cpu = torch.device("cpu")

    def train() -> None:
        with bf16_autocast(True, cpu):
            logits = model(input_ids=ids).logits
        torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def forward() -> None:
        with torch.no_grad(), bf16_autocast(True, cpu):
            model(input_ids=ids)

    def sample() -> None:
        prompts = torch.randint(0, vocab, (64, 24))
        with torch.inference_mode(), cpu_bf16_autocast(cpu):
            model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=32,
                           min_new_tokens=32, do_sample=True, top_k=0, pad_token_id=0)  # fmt: skip

    return {"train step": train, "forward": forward, "sample": sample}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM

    from app.config import get_settings

    torch.manual_seed(0)
    config = LlamaConfig(**{"vocab_size": 4096, **MODELS[args.model]})
    model = LlamaForCausalLM(config)
    timings: dict[str, dict[str, list[float]]] = {}
    for name, run in cases(model, batch=8, tokens=64, vocab=config.vocab_size).items():
        run()  # warm-up
        for _ in range(args.repeats):
            for mode in ("float32", "bf16"):
                os.environ["RANKLAB_CPU_BF16"] = str(mode == "bf16").lower()
                get_settings.cache_clear()
                started = time.perf_counter()
                run()
                timings.setdefault(name, {}).setdefault(mode, []).append(time.perf_counter() - started)
    rows = {name: {mode: statistics.median(t) for mode, t in by_mode.items()} for name, by_mode in timings.items()}
    print(f"model {args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads, CPU flags {cpu_flags()}")
    print("| case | float32 s | bf16 s | float32 / bf16 |\n|---|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['float32']:.3f} | {row['bf16']:.3f} | {row['float32'] / row['bf16']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "cpu_flags": cpu_flags(), "median_s": rows}, indent=2))


if __name__ == "__main__":
    main()
