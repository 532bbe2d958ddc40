"""Generated tokens/s of ranklab's `generate_completions` against plain `model.generate` (dynamic KV cache).

    python bench/sampling.py --model tiny --device cpu --batch-size 32 --max-new-tokens 16 --n-prompts 16
    python bench/sampling.py --model smollm2-random --device cuda --dtype bf16 --batch-size 256 \\
        --max-new-tokens 64 --n-prompts 256

Both sides sample the same prompts (MT-Bench first turns, cycled), K copies each, with the same sampling
parameters and rows per generate call, in the same process; tokens are counted up to and including EOS.
Prints a table and a markdown row for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.common.chat import as_messages, render_prompt  # noqa: E402
from trainer.common.generation import eos_token_ids  # noqa: E402
from trainer.common.models import default_device, load_policy  # noqa: E402
from trainer.common.tiny import build_tiny_model  # noqa: E402
from trainer.common.tokenizer import prepare_tokenizer  # noqa: E402
from trainer.sampling.completions import (  # noqa: E402
    SamplingConfig,
    generate_completions,
    generate_kwargs,
    trim_at_eos,
)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
FALLBACK_PROMPTS = ["Write a haiku about the sea.", "Explain recursion to a child in three sentences."]


def smollm2_random(device: torch.device, dtype: torch.dtype):
    """SmolLM2-135M's architecture with random weights (throughput does not depend on the weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from trainer.common.smollm2 import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)  # tokenizer only, no weights
    prepare_tokenizer(tokenizer, max_length=8192)
    tokenizer.padding_side = "left"
    config = LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
        rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval(), tokenizer


def load(args: argparse.Namespace, tmp: str):
    device = torch.device(args.device) if args.device else default_device()
    dtype = DTYPES[args.dtype] if args.dtype else None
    if args.model == "tiny":
        return load_policy(build_tiny_model(Path(tmp) / "tiny"), device=device, dtype=dtype)
    if args.model == "smollm2":
        from trainer.common.smollm2 import ensure_default_sft_model

        return load_policy(ensure_default_sft_model(Path(args.data_dir)), device=device, dtype=dtype)
    return smollm2_random(device, dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32))


def bench_prompts(n: int) -> list[str]:
    try:
        from app.demo_data import mtbench_questions

        pool = mtbench_questions()
    except FileNotFoundError:
        pool = FALLBACK_PROMPTS
    return [pool[i % len(pool)] for i in range(n)]


def plain_generate(model, tokenizer, prompts: list[str], cfg: SamplingConfig) -> tuple[int, float]:
    """What a plain HF user writes: K return sequences per prompt, default dynamic cache."""
    start = time.perf_counter()
    texts = [render_prompt(tokenizer, as_messages(p)) for p in prompts]
    per_call = max(1, cfg.batch_size // cfg.k)
    kwargs = generate_kwargs(replace(cfg, cache_implementation=None), tokenizer)
    eos_ids, tokens = eos_token_ids(model, tokenizer), 0
    for index, first in enumerate(range(0, len(texts), per_call)):
        enc = tokenizer(texts[first : first + per_call], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(model.device)
        torch.manual_seed(cfg.seed + index)
        with torch.inference_mode():
            out = model.generate(**enc, num_return_sequences=cfg.k, **kwargs)
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            kept, count, _ = trim_at_eos(row, eos_ids)
            tokens += count
            tokenizer.decode(kept, skip_special_tokens=True)
    return tokens, time.perf_counter() - start


def ours(model, tokenizer, prompts: list[str], cfg: SamplingConfig) -> tuple[int, float]:
    stats = generate_completions(model, tokenizer, prompts, cfg).stats
    return stats.generated_tokens, stats.seconds


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()} CPU x{os.cpu_count()}, torch {torch.__version__}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "smollm2", "smollm2-random"], default="tiny")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per generate call")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--n-prompts", type=int, default=16)
    parser.add_argument("--k", type=int, default=4, help="completions per prompt")
    parser.add_argument("--cache", choices=["dynamic", "static"], default="dynamic", help="KV cache of OUR side")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (median reported)")
    parser.add_argument("--data-dir", default="data", help="where --model smollm2 is converted and cached")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer = load(args, tmp)
    cfg = SamplingConfig(
        k=args.k, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=0,
        cache_implementation=None if args.cache == "dynamic" else args.cache,
    )  # fmt: skip
    prompts = bench_prompts(args.n_prompts)
    warmup = prompts[: max(1, args.batch_size // args.k)]
    plain_generate(model, tokenizer, warmup, cfg)
    ours(model, tokenizer, warmup, cfg)
    runs: dict[str, list[tuple[int, float]]] = {"plain": [], "ours": []}
    for _ in range(args.repeats):  # interleaved so drift hits both sides alike
        runs["plain"].append(plain_generate(model, tokenizer, prompts, cfg))
        runs["ours"].append(ours(model, tokenizer, prompts, cfg))
    report(args, model, runs)


def report(args: argparse.Namespace, model, runs: dict[str, list[tuple[int, float]]]) -> None:
    # Best-of is reported next to the median: on a shared machine, other load only ever slows a run down.
    median = {side: statistics.median(t / s for t, s in r) for side, r in runs.items()}
    best = {side: max(t / s for t, s in r) for side, r in runs.items()}
    tokens = {side: statistics.median(t for t, _ in r) for side, r in runs.items()}
    ratio = {"median": median["ours"] / median["plain"], "best": best["ours"] / best["plain"]}
    dtype = str(model.dtype).removeprefix("torch.")
    print(f"model {args.model}, {machine(model.device)}, {dtype}, batch {args.batch_size}, k {args.k}, "
          f"{args.n_prompts} prompts, {args.max_new_tokens} new tokens, {args.repeats} repeats")  # fmt: skip
    print("| side | generated tokens | tokens/s median | tokens/s best | ratio median | ratio best |")
    print("|---|---|---|---|---|---|")
    for side, label in (("plain", "plain model.generate (dynamic cache)"),
                        ("ours", f"ranklab generate_completions ({args.cache} cache)")):  # fmt: skip
        r_med, r_best = median[side] / median["plain"], best[side] / best["plain"]
        rates = f"{median[side]:.0f} | {best[side]:.0f} | {r_med:.2f}x | {r_best:.2f}x"
        print(f"| {label} | {tokens[side]:.0f} | {rates} |")
    print("\nmarkdown row for docs/benchmarks.md:")
    print(f"| sampling | `python {' '.join(sys.argv)}` | {machine(model.device)} | {args.model} {dtype} | "
          f"plain {median['plain']:.0f} tok/s | ours {median['ours']:.0f} tok/s | "
          f"{ratio['median']:.2f}x (best-of-{args.repeats}: {ratio['best']:.2f}x) |")  # fmt: skip


if __name__ == "__main__":
    main()
