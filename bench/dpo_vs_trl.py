"""ranklab's `train_dpo` trainer against TRL's DPOTrainer on the C(K,2) pairs of the same K=9 rankings (issue 19).

    # CPU, small (the figures in docs/benchmarks.md)
    python bench/dpo_vs_trl.py --model tiny --device cpu --threads 1 --prompts 48 --json /tmp/dpo_vs_trl_tiny.json
    python bench/dpo_vs_trl.py --model smollm2-135m --device cpu --threads 2 --prompts 12 --batch-size 2 \\
        --prompt-tokens 32 --response-tokens 16 --json /tmp/dpo_vs_trl_135m_cpu.json
    # GPU (H100/H200), bf16 autocast, random weights
    python bench/dpo_vs_trl.py --model smollm2-135m --device cuda --dtype bf16 --prompts 256 --batch-size 8 \\
        --prompt-tokens 256 --response-tokens 128 --trl-grad-accum 8 --json /tmp/dpo_vs_trl_135m.json
    python bench/dpo_vs_trl.py --model 1b --device cuda --dtype bf16 --prompts 128 --batch-size 4 \\
        --prompt-tokens 256 --response-tokens 128 --trl-grad-accum 8 --json /tmp/dpo_vs_trl_1b.json

Data: bench/reward_vs_trl.py's synthetic K-way tasks (completion k carries the marker word K-1-rank times: a learnable
preference), split by prompt into training and validation.

Sides, each from a copy of the same randomly initialised model, which is also the frozen reference:
- ``trl``: `trl.DPOTrainer` (sigmoid loss) on every strict pair of every ranking as a chosen/rejected row
  (conversational format), reference log-probs precomputed once (`precompute_ref_log_probs=True`, timed with
  preprocessing); each pair is two fresh sequences: 2 x C(K,2) = 72 forward passes per K=9 ranking;
- ``ranklab``: `trainer.dpo.train.train_dpo` (loss_type dpo): one pass per completion (9 per ranking), the
  reference's log-probs computed once per completion (`reference_logprobs`, timed with preprocessing), packed rows.

Matched: beta, learning rate (constant, no warm-up), AdamW (torch), clipping at 1.0, comparisons per optimizer step
(ranklab: --batch-size tasks x C(K,2); TRL: the same number of pairs, in --trl-grad-accum micro-batches), epochs, no
gradient checkpointing, bf16 autocast with float32 weights under --dtype bf16, one process. Validation accuracy: the
implicit-reward pair accuracy of each trained model on the held-out rankings, measured the same way for both
(`trainer.dpo.train.evaluate_dpo` with the reference's log-probs). Peak memory as in bench/reward_vs_trl.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PeakMemory,
    _sync,
    add_run_args,
    as_preference_rows,
    fresh_causal_lm,
    initial_causal_lm,
    make_tasks,
    model_config,
    run_header,
    start_run,
    write_json,
)
from trainer.common.rankings import split_tasks  # noqa: E402
from trainer.common.tiny import build_tiny_tokenizer  # noqa: E402
from trainer.dpo.data import encode_dpo_tasks, reference_logprobs  # noqa: E402
from trainer.dpo.train import DpoConfig, evaluate_dpo, train_dpo  # noqa: E402

SIDES = ("trl", "ranklab")


def ranklab_config(args: argparse.Namespace) -> DpoConfig:
    return DpoConfig(loss_type="dpo", beta=args.beta, learning_rate=args.lr, warmup_ratio=0.0, min_lr_ratio=1.0,
                     batch_size=args.batch_size, grad_accum_steps=1, epochs=args.epochs, max_length=args.max_length,
                     packing=True, bf16=args.dtype == "bf16", seed=args.seed)  # fmt: skip


def train_ranklab(model: Any, reference: Any, tokenizer: Any, train: list, args: argparse.Namespace) -> dict[str, Any]:
    cfg = ranklab_config(args)
    start = time.perf_counter()
    tasks = encode_dpo_tasks(train, tokenizer, args.max_length)
    reference_logprobs(reference, tasks, packing=True, pad_id=int(tokenizer.pad_token_id))
    preprocess_s = time.perf_counter() - start
    pairs: list[float] = []
    device = next(model.parameters()).device
    _sync(device)
    start = time.perf_counter()
    result = train_dpo(cfg, model, tasks, pad_token_id=int(tokenizer.pad_token_id),
                       on_metrics=lambda _, m: pairs.append(m["dpo/pairs"]))  # fmt: skip
    _sync(device)
    return {"preprocess_s": preprocess_s, "train_s": time.perf_counter() - start, "steps": result.steps,
            "comparisons": round(sum(pairs))}  # fmt: skip


def train_trl(model: Any, reference: Any, tokenizer: Any, train: list, args: argparse.Namespace,
              out_dir: str) -> dict[str, Any]:  # fmt: skip
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    k = len(train[0].completions)
    pairs_per_step = args.batch_size * k * (k - 1) // 2
    if pairs_per_step % args.trl_grad_accum:
        raise ValueError(f"--trl-grad-accum {args.trl_grad_accum} must divide the {pairs_per_step} pairs of a step")
    trl_args = DPOConfig(
        output_dir=out_dir, per_device_train_batch_size=pairs_per_step // args.trl_grad_accum,
        gradient_accumulation_steps=args.trl_grad_accum, num_train_epochs=args.epochs, learning_rate=args.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        bf16=args.dtype == "bf16", gradient_checkpointing=False, beta=args.beta, loss_type="sigmoid",
        precompute_ref_log_probs=True, max_length=args.max_length, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, seed=args.seed, data_seed=args.seed,
        dataloader_drop_last=True, use_cpu=args.device == "cpu",
    )  # fmt: skip
    device = next(model.parameters()).device
    start = time.perf_counter()
    rows = Dataset.from_list(as_preference_rows(train))
    trainer = DPOTrainer(
        model=model, ref_model=reference, args=trl_args, train_dataset=rows, processing_class=tokenizer
    )
    with contextlib.suppress(AttributeError):  # precompute now if this TRL defers it, so training time is training
        trainer.get_train_dataloader()
    preprocess_s = time.perf_counter() - start
    _sync(device)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    _sync(device)
    steps = trainer.state.global_step
    return {"preprocess_s": preprocess_s, "train_s": time.perf_counter() - start, "steps": steps,
            "comparisons": steps * pairs_per_step}  # fmt: skip


def run_side(side: str, make_model: Any, tokenizer: Any, train: list, val_tasks: list, args: argparse.Namespace,
             device: torch.device) -> dict[str, Any]:  # fmt: skip
    model, reference = make_model(), make_model().eval()
    with PeakMemory(device) as memory, tempfile.TemporaryDirectory() as out_dir:
        if side == "trl":
            numbers = train_trl(model, reference, tokenizer, train, args, out_dir)
        else:
            numbers = train_ranklab(model, reference, tokenizer, train, args)
    evaluation = evaluate_dpo(model, val_tasks, ranklab_config(args), pad_token_id=int(tokenizer.pad_token_id))
    del model, reference
    gc.collect()
    comparisons, seconds = numbers["comparisons"], numbers["train_s"]
    return {"side": side, **numbers, "peak_mib": memory.mib, "comparisons_per_s": comparisons / seconds,
            "comparisons_per_s_with_preprocessing": comparisons / (seconds + numbers["preprocess_s"]),
            "val_accuracy": evaluation["val/accuracy"], "val_pairs": evaluation["val/pairs"]}  # fmt: skip


def markdown_table(results: list[dict[str, Any]]) -> str:
    base = next((r for r in results if r["side"] == "trl"), None)
    lines = ["| side | preprocess s | train s | comparisons/s | ratio vs TRL | incl. preprocess | ratio | peak MiB | "
             "val accuracy |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        ratio = f"{r['comparisons_per_s'] / base['comparisons_per_s']:.2f}x" if base else ""
        ratio_all = (
            f"{r['comparisons_per_s_with_preprocessing'] / base['comparisons_per_s_with_preprocessing']:.2f}x"
            if base else ""
        )  # fmt: skip
        lines.append(
            f"| {r['side']} | {r['preprocess_s']:.2f} | {r['train_s']:.2f} | {r['comparisons_per_s']:,.0f} | {ratio} "
            f"| {r['comparisons_per_s_with_preprocessing']:,.0f} | {ratio_all} | {r['peak_mib']:,.0f} | "
            f"{r['val_accuracy']:.3f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, SIDES, lr=5e-4, max_length=1024)
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--response-tokens", type=int, default=16)
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=4, help="tasks per step (x C(K,2) pairs for TRL)")
    parser.add_argument("--trl-grad-accum", type=int, default=1)
    parser.add_argument("--beta", type=float, default=0.1)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device, sides = start_run(args, SIDES)
    tokenizer = build_tiny_tokenizer()
    tasks = make_tasks(args.prompts, args.k, args.prompt_tokens, args.response_tokens, args.seed)
    train, val = split_tasks(tasks, args.val_fraction, seed=args.seed)
    config = model_config(args.model, len(tokenizer), args.max_length)
    initial, n_params = initial_causal_lm(config, args.seed)

    def make_model() -> Any:
        return fresh_causal_lm(config, initial, device)

    val_tasks = encode_dpo_tasks(val, tokenizer, args.max_length)
    reference_logprobs(make_model(), val_tasks, packing=True, pad_id=int(tokenizer.pad_token_id))
    few = argparse.Namespace(**{**vars(args), "epochs": 1})
    for side in sides:  # warm-up, unmeasured
        run_side(side, make_model, tokenizer, train[: args.batch_size], copy.copy(val_tasks[:1]), few, device)
    results = [run_side(side, make_model, tokenizer, train, val_tasks, args, device) for side in sides]
    print(f"{run_header(args, n_params, device)}; {len(train)} train / {len(val)} val tasks, K={args.k}, "
          f"beta {args.beta}, {args.epochs} epoch(s)")  # fmt: skip
    print(markdown_table(results))
    write_json(args, device, n_params, results, "comparisons_per_s")


if __name__ == "__main__":
    main()
