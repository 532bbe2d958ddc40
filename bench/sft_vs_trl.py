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
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import FILLER, MODELS, PeakMemory, _sync, model_config, quiet_libraries  # noqa: E402
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


def fresh_model(config: Any, initial: dict[str, torch.Tensor], device: torch.device) -> Any:
    from transformers import LlamaForCausalLM

    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.load_state_dict(initial)
    return model


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
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--max-prompt-tokens", type=int, default=64)
    parser.add_argument("--max-answer-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    quiet_libraries()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.dtype == "bf16" and device.type != "cuda":
        raise SystemExit("--dtype bf16 is autocast on CUDA only; use --dtype fp32 on CPU")
    sides = args.sides.split(",")
    if unknown := set(sides) - set(SIDES):
        raise SystemExit(f"unknown sides {sorted(unknown)}; choose from {SIDES}")
    tokenizer = build_tiny_tokenizer()
    records = make_records(args.examples, args.max_prompt_tokens, args.max_answer_tokens, args.seed)
    config = model_config(args.model, len(tokenizer), args.max_length)
    torch.manual_seed(args.seed)
    from transformers import LlamaForCausalLM

    base = LlamaForCausalLM(config)
    initial = {k: v.detach().clone() for k, v in base.state_dict().items()}
    n_params = sum(p.numel() for p in base.parameters())
    del base

    def make_model() -> Any:
        return fresh_model(config, initial, device)

    few = argparse.Namespace(**{**vars(args), "epochs": 1})
    for side in sides:  # warm-up: one short run per side, unmeasured
        run_side(side, make_model, tokenizer, records[: args.batch_size * 2], few, device)
    results = [run_side(side, make_model, tokenizer, records, args, device) for side in sides]
    print(f"model {args.model} ({n_params / 1e6:.2f}M params), device {device}, dtype {args.dtype}, torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}, nproc {os.cpu_count()}, {platform.machine()}; "
          f"{len(records)} demonstrations, batch {args.batch_size}, {args.epochs} epoch(s)")  # fmt: skip
    print(markdown_table(results))
    if args.json:
        base_side = next((r for r in results if r["side"] == "trl"), None)
        payload = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                   "machine": {"nproc": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform()},
                   "params": n_params, "results": results,
                   "ratios_vs_trl": {r["side"]: r["tokens_per_s"] / base_side["tokens_per_s"] for r in results
                                     if base_side and r["side"] != "trl"}}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
