"""ranklab's `train_sft` trainer against TRL's SFTTrainer: same demonstrations, model copy, tokens, optimizer and batch,
in one run (issue 18).

    # CPU, small (the figures in docs/benchmarks.md)
    python bench/sft_vs_trl.py --model tiny --device cpu --threads 1 --examples 256 --json /tmp/sft_vs_trl_tiny.json
    python bench/sft_vs_trl.py --model smollm2-135m --device cpu --threads 2 --examples 48 --batch-size 8 \\
        --json /tmp/sft_vs_trl_135m_cpu.json
    # GPU (H100/H200), bf16 autocast, random weights
    python bench/sft_vs_trl.py --model smollm2-135m --device cuda --dtype bf16 --examples 2048 --batch-size 16 \\
        --max-prompt-tokens 256 --max-answer-tokens 256 --json /tmp/sft_vs_trl_135m.json
    python bench/sft_vs_trl.py --model 1b --device cuda --dtype bf16 --examples 1024 --batch-size 8 \\
        --max-prompt-tokens 256 --max-answer-tokens 256 --json /tmp/sft_vs_trl_1b.json

Data: synthetic chat demonstrations whose prompt and answer lengths vary uniformly (short chat data, where padding
costs most): a user turn of 4..--max-prompt-tokens filler words, an answer of 2..--max-answer-tokens. Every word is
one token of the tiny tokenizer (`trainer.common.tiny.build_tiny_tokenizer`), used for every model size.

Sides, each from a copy of the same randomly initialised model, over the same examples in the same number of steps:
- ``trl``: `trl.SFTTrainer` on prompt/completion conversational rows (loss on the completion only, its default for
  that format), padding each batch to its longest row (its default; `padding_free` off);
- ``ranklab-padded``: `trainer.sft.train.train_sft` with `packing=False` (the same padding);
- ``ranklab-packed``: the same with padding-free packing (one row per micro-batch, positions restart per sequence).

Matched: learning rate (constant, no warm-up), AdamW (torch), clipping at 1.0, examples per step (--batch-size),
epochs, no gradient checkpointing (TRL's default turns it on), bf16 autocast with float32 weights under --dtype bf16.
Measured: preprocessing (tokenisation) and training seconds, real tokens per second of training (prompt + answer,
padding not counted: the same token count for every side), computed tokens (padding included), peak memory as in
bench/reward_vs_trl.py, and the final training loss.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    FILLER,
    PeakMemory,
    _sync,
    add_run_args,
    fresh_causal_lm,
    initial_causal_lm,
    model_config,
    run_header,
    start_run,
    write_json,
)
from trainer.common.tiny import build_tiny_tokenizer  # noqa: E402
from trainer.sft.data import encode_records  # noqa: E402
from trainer.sft.train import SftConfig, train_sft  # noqa: E402

SIDES = ("trl", "ranklab-padded", "ranklab-packed")


def make_records(n: int, max_prompt: int, max_answer: int, seed: int) -> list[dict[str, Any]]:
    """`n` conversations (one user turn) with an answer, lengths uniform in [4, max_prompt] and [2, max_answer]."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        prompt = " ".join(rng.choice(FILLER) for _ in range(rng.randint(4, max_prompt)))
        answer = " ".join(rng.choice(FILLER) for _ in range(rng.randint(2, max_answer)))
        records.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    return records


def train_ranklab(model: Any, tokenizer: Any, records: list[dict[str, Any]], args: argparse.Namespace,
                  packed: bool) -> dict[str, Any]:  # fmt: skip
    start = time.perf_counter()
    examples = encode_records(tokenizer, records, args.max_length)
    preprocess_s = time.perf_counter() - start
    cfg = SftConfig(learning_rate=args.lr, warmup_ratio=0.0, min_lr_ratio=1.0, batch_size=args.batch_size,
                    grad_accum_steps=1, epochs=args.epochs, max_length=args.max_length, packing=packed,
                    gradient_checkpointing=False, bf16=args.dtype == "bf16", seed=args.seed)  # fmt: skip
    losses: list[float] = []
    device = next(model.parameters()).device

    def on_metrics(step: int, metrics: dict[str, float]) -> None:
        losses.append(metrics["loss/sft"])

    _sync(device)
    start = time.perf_counter()
    result = train_sft(cfg, model, examples, pad_token_id=int(tokenizer.pad_token_id), on_metrics=on_metrics)
    _sync(device)
    real = sum(len(e.input_ids) for e in examples) * args.epochs
    return {"preprocess_s": preprocess_s, "train_s": time.perf_counter() - start, "steps": result.steps,
            "real_tokens": real, "final_loss": losses[-1]}  # fmt: skip


def train_trl(model: Any, tokenizer: Any, records: list[dict[str, Any]], args: argparse.Namespace,
              out_dir: str) -> dict[str, Any]:  # fmt: skip
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records]
    trl_args = SFTConfig(
        output_dir=out_dir, per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
        num_train_epochs=args.epochs, learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", bf16=args.dtype == "bf16",
        gradient_checkpointing=False, max_length=args.max_length, packing=False, padding_free=False,
        eval_strategy="no", save_strategy="no", logging_strategy="steps", logging_steps=1, report_to="none",
        disable_tqdm=True, seed=args.seed, data_seed=args.seed, use_cpu=args.device == "cpu",
    )  # fmt: skip
    device = next(model.parameters()).device
    start = time.perf_counter()
    trainer = SFTTrainer(model=model, args=trl_args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    preprocess_s = time.perf_counter() - start
    _sync(device)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    _sync(device)
    train_s = time.perf_counter() - start
    real = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * args.epochs
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"preprocess_s": preprocess_s, "train_s": train_s, "steps": trainer.state.global_step, "real_tokens": real,
            "final_loss": losses[-1] if losses else float("nan")}  # fmt: skip


def run_side(side: str, make_model: Any, tokenizer: Any, records: list[dict[str, Any]], args: argparse.Namespace,
             device: torch.device) -> dict[str, Any]:  # fmt: skip
    model = make_model()
    with PeakMemory(device) as memory, tempfile.TemporaryDirectory() as out_dir:
        if side == "trl":
            numbers = train_trl(model, tokenizer, records, args, out_dir)
        else:
            numbers = train_ranklab(model, tokenizer, records, args, packed=side == "ranklab-packed")
    del model
    gc.collect()
    return {
        "side": side,
        **numbers,
        "peak_mib": memory.mib,
        "tokens_per_s": numbers["real_tokens"] / numbers["train_s"],
    }


def markdown_table(results: list[dict[str, Any]]) -> str:
    base = next((r for r in results if r["side"] == "trl"), None)
    lines = ["| side | preprocess s | train s | steps | real tokens/s | ratio vs TRL | peak MiB | final loss |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else ""
        lines.append(
            f"| {r['side']} | {r['preprocess_s']:.2f} | {r['train_s']:.2f} | {r['steps']} | {r['tokens_per_s']:,.0f} "
            f"| {ratio} | {r['peak_mib']:,.0f} | {r['final_loss']:.3f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, SIDES, lr=1e-4, max_length=1024)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--max-prompt-tokens", type=int, default=64)
    parser.add_argument("--max-answer-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device, sides = start_run(args, SIDES)
    tokenizer = build_tiny_tokenizer()
    records = make_records(args.examples, args.max_prompt_tokens, args.max_answer_tokens, args.seed)
    config = model_config(args.model, len(tokenizer), args.max_length)
    initial, n_params = initial_causal_lm(config, args.seed)

    def make_model() -> Any:
        return fresh_causal_lm(config, initial, device)

    few = argparse.Namespace(**{**vars(args), "epochs": 1})
    for side in sides:  # warm-up: one short run per side, unmeasured
        run_side(side, make_model, tokenizer, records[: args.batch_size * 2], few, device)
    results = [run_side(side, make_model, tokenizer, records, args, device) for side in sides]
    print(f"{run_header(args, n_params, device)}; {len(records)} demonstrations, batch {args.batch_size}, "
          f"{args.epochs} epoch(s)")  # fmt: skip
    print(markdown_table(results))
    write_json(args, device, n_params, results, "tokens_per_s")


if __name__ == "__main__":
    main()
