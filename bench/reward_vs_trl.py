"""ranklab's reward-model trainer against TRL's RewardTrainer: same model, same K=9 rankings, one process (issue 10).

    # CPU, small (the figures in docs/benchmarks.md; one thread: two threads on a busy 2-core machine thrash)
    python bench/reward_vs_trl.py --model tiny --device cpu --threads 1 --prompts 64 --prompt-tokens 64 \\
        --response-tokens 16 --batch-size 8 --lr 1e-3 --json /tmp/reward_vs_trl_cpu.json
    # GPU (H100/H200), SmolLM2-135M architecture and a ~1B Llama, bf16 autocast, random weights
    python bench/reward_vs_trl.py --model smollm2-135m --device cuda --dtype bf16 --prompts 512 \\
        --prompt-tokens 512 --response-tokens 128 --batch-size 8 --trl-grad-accum 8 --json /tmp/reward_vs_trl_135m.json
    python bench/reward_vs_trl.py --model 1b --device cuda --dtype bf16 --prompts 256 --prompt-tokens 512 \\
        --response-tokens 128 --batch-size 4 --trl-grad-accum 8 --json /tmp/reward_vs_trl_1b.json

--trl-grad-accum 8 gives TRL's micro-batches as many rows as ranklab's (ranklab: K x --batch-size rows; TRL:
2 x --batch-size x C(K,2) / --trl-grad-accum rows, equal at K-1 = 8 for K=9), so both fit the same memory.
Compute-bound ceilings of the speed-up, from token counts alone (prompt P, response R tokens): plain 2*C(K,2)/K = 8x
at K=9 whatever P and R; shared prompt 2*C(K,2)*(P+R)/(P+K*R) = 72(P+R)/(P+9R), which reaches 25x only when
P >= 3.3 R (P=512, R=128: 27.7x; P=256, R=128: 19.6x).

Data: synthetic tasks, one prompt and K completions each, fully and strictly ranked: completion k carries a marker
word ("France") K-1-rank times among filler words, so the best one has the most markers (a learnable preference).
Every word is one token of the tiny tokenizer (`trainer.models.build_tiny_tokenizer`, used for every model size: the
token ids stay below its vocabulary of 384, the embedding table keeps the configured size). Tasks are split by prompt
into training and validation (--val-fraction).

Sides, each starting from a copy of the same randomly initialised model:
- ``trl``: `trl.RewardTrainer` on the C(K,2) chosen/rejected pairs of every ranking (conversational format, so its
  chat-template tokenisation gives the same token ids as ranklab's), tokenised by TRL itself (timed as preprocessing);
- ``ranklab``: `trainer.reward.train_reward_model`, one row per completion, every pair of a ranking scored from those
  K rewards (tokenisation inside the call is timed separately and subtracted from the training time);
- ``ranklab-shared``: the same with ``shared_prompt=True``: each prompt is encoded once per task.

Matched: learning rate (constant, no warm-up), AdamW (torch, non-fused, no weight decay), gradient clipping at 1.0,
comparisons per optimizer step (ranklab: --batch-size tasks x C(K,2); TRL: --batch-size x C(K,2) pairs, split into
--trl-grad-accum micro-batches; TRL's pairs are shuffled across prompts, ranklab keeps a task's pairs together),
epochs, no gradient checkpointing (TRL's default turns it on), no evaluation or saving during training, bf16 autocast
with float32 weights when --dtype bf16 (on CUDA), torch threads (--threads). Validation accuracy: every side's trained
model scores the held-out tasks with `trainer.reward.evaluate_reward_model` (all C(K,2) pairs of each ranking).

Measured: preprocessing seconds (tokenisation), training seconds, comparisons/s (training pairs per second of training;
also including preprocessing), tokens/s (real, non-padding tokens processed, a shared prompt counted once), peak memory
(CUDA: `torch.cuda.max_memory_allocated`; CPU: rise of the peak resident set size over the side's start, after
`malloc_trim` hands freed memory back and /proc/self/clear_refs resets the peak), tokens per comparison (the
compute-bound ceiling of the speed-up), and on CUDA the MFU: 6 x non-embedding parameters x tokens / training
seconds / (--peak-tflops x 1e12).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trainer.reward.train as ranklab_reward  # noqa: E402
from bench.common import (  # noqa: E402
    PeakMemory,
    _sync,
    add_run_args,
    as_preference_rows,
    machine,
    make_tasks,
    model_config,
    run_header,
    start_run,
)
from trainer.common.reward_model import build_reward_model  # noqa: E402
from trainer.common.tiny import build_tiny_tokenizer  # noqa: E402
from trainer.reward.config import RewardConfig  # noqa: E402
from trainer.reward.data import EncodedTask, TaskGroup, split_tasks  # noqa: E402
from trainer.reward.shared import split_shared_prompt  # noqa: E402
from trainer.reward.train import evaluate_reward_model, train_reward_model  # noqa: E402

SIDES = ("trl", "ranklab", "ranklab-shared")


@dataclass
class SideResult:
    """What one side did and how fast."""

    side: str
    preprocess_s: float
    train_s: float
    steps: int
    comparisons: int
    tokens: int
    peak_mib: float
    val_accuracy: float
    val_pairs: int
    mfu: float | None = None

    @property
    def comparisons_per_s(self) -> float:
        return self.comparisons / self.train_s

    @property
    def comparisons_per_s_with_preprocessing(self) -> float:
        return self.comparisons / (self.train_s + self.preprocess_s)

    @property
    def tokens_per_comparison(self) -> float:
        return self.tokens / self.comparisons

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.train_s


# ---------------------------------------------------------------- data


# ---------------------------------------------------------------- model and measurement


def fresh_model(config, initial: dict[str, torch.Tensor], pad_token_id: int, device: torch.device):
    """A model with the shared initial weights, float32 (bf16 is autocast on CUDA by both trainers)."""
    with torch.device(device):
        model = build_reward_model(config, pad_token_id=pad_token_id)
    model.load_state_dict(initial)
    return model


def non_embedding_params(model: torch.nn.Module) -> int:
    embedding = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embedding


@contextlib.contextmanager
def timed_encoding(seconds: list[float], encoded: list[list[EncodedTask]]) -> Iterator[None]:
    """Time (and keep) the tokenisation that `train_reward_model` does inside itself."""
    original = ranklab_reward.encode_tasks

    def wrapper(*args: Any, **kwargs: Any) -> list[EncodedTask]:
        start = time.perf_counter()
        out = original(*args, **kwargs)
        seconds.append(time.perf_counter() - start)
        encoded.append(out)
        return out

    ranklab_reward.encode_tasks = wrapper
    try:
        yield
    finally:
        ranklab_reward.encode_tasks = original


def tokens_per_task(task: EncodedTask, shared: bool, max_length: int) -> int:
    if not shared:
        return task.n_tokens
    prompt, responses = split_shared_prompt(task.sequences, max_length)
    return len(prompt) + sum(len(r) for r in responses)


# ---------------------------------------------------------------- the sides


def ranklab_config(args: argparse.Namespace, shared: bool) -> RewardConfig:
    return RewardConfig(
        learning_rate=args.lr, weight_decay=0.0, warmup_ratio=0.0, decay="constant", batch_size=args.batch_size,
        grad_accum_steps=1, epochs=args.epochs, max_length=args.max_length, max_grad_norm=1.0, seed=args.seed,
        bf16=args.dtype == "bf16", shared_prompt=shared,
    )  # fmt: skip


def train_ranklab(model, tokenizer, train: list[TaskGroup], args: argparse.Namespace, shared: bool) -> dict[str, Any]:
    cfg = ranklab_config(args, shared)
    pairs: list[float] = []
    encode_s: list[float] = []
    encoded: list[list[EncodedTask]] = []
    device = next(model.parameters()).device
    with timed_encoding(encode_s, encoded):
        _sync(device)
        start = time.perf_counter()
        result = train_reward_model(cfg, model, tokenizer, train, on_metrics=lambda _, m: pairs.append(m["rm/pairs"]))
        _sync(device)
        total = time.perf_counter() - start
    tasks = encoded[0]
    mean_tokens = sum(tokens_per_task(t, shared, cfg.max_length) for t in tasks) / len(tasks)
    return {
        "preprocess_s": sum(encode_s),
        "train_s": total - sum(encode_s),
        "steps": result.steps,
        "comparisons": round(sum(pairs)),
        "tokens": round(mean_tokens * result.steps * cfg.batch_size),
    }


def train_trl(model, tokenizer, train: list[TaskGroup], args: argparse.Namespace, out_dir: str) -> dict[str, Any]:
    from datasets import Dataset
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    k = len(train[0].completions)
    pairs_per_step = args.batch_size * k * (k - 1) // 2
    if pairs_per_step % args.trl_grad_accum:
        raise ValueError(f"--trl-grad-accum {args.trl_grad_accum} must divide the {pairs_per_step} pairs of a step")
    trl_args = TRLRewardConfig(
        output_dir=out_dir, per_device_train_batch_size=pairs_per_step // args.trl_grad_accum,
        gradient_accumulation_steps=args.trl_grad_accum, num_train_epochs=args.epochs, learning_rate=args.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        bf16=args.dtype == "bf16", gradient_checkpointing=False, max_length=None, eval_strategy="no",
        save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True, seed=args.seed,
        data_seed=args.seed, dataloader_drop_last=True, use_cpu=args.device == "cpu",
    )  # fmt: skip
    device = next(model.parameters()).device
    start = time.perf_counter()
    dataset = Dataset.from_list(as_preference_rows(train))
    trainer = RewardTrainer(model=model, args=trl_args, train_dataset=dataset, processing_class=tokenizer)
    preprocess_s = time.perf_counter() - start
    _sync(device)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its final metrics even with logging off
        trainer.train()
    _sync(device)
    train_s = time.perf_counter() - start
    prepared = trainer.train_dataset
    lengths = [len(c) + len(r) for c, r in zip(prepared["chosen_ids"], prepared["rejected_ids"], strict=True)]
    steps = trainer.state.global_step
    return {
        "preprocess_s": preprocess_s,
        "train_s": train_s,
        "steps": steps,
        "comparisons": steps * pairs_per_step,
        "tokens": round(sum(lengths) / len(lengths) * steps * pairs_per_step),
    }


def run_side(side: str, make_model: Callable[[], torch.nn.Module], tokenizer, train, val, args, device) -> SideResult:
    model = make_model()
    with PeakMemory(device) as memory, tempfile.TemporaryDirectory() as out_dir:
        if side == "trl":
            numbers = train_trl(model, tokenizer, train, args, out_dir)
        else:
            numbers = train_ranklab(model, tokenizer, train, args, shared=side == "ranklab-shared")
    evaluation = evaluate_reward_model(model, tokenizer, val, max_length=args.max_length)
    result = SideResult(side, peak_mib=memory.mib, val_accuracy=evaluation.accuracy, val_pairs=evaluation.pairs,
                        **numbers)  # fmt: skip
    if device.type == "cuda":
        result.mfu = 6 * non_embedding_params(model) * result.tokens_per_s / (args.peak_tflops * 1e12)
    del model
    gc.collect()
    return result


def warm_up(make_model, tokenizer, train, args, sides) -> None:
    """One step of each side on one batch of tasks, unmeasured (kernel selection, lazy imports, allocator)."""
    few = train[: args.batch_size]
    quiet = argparse.Namespace(**{**vars(args), "epochs": 1})
    with tempfile.TemporaryDirectory() as out_dir:
        for side in sides:
            model = make_model()
            if side == "trl":
                train_trl(model, tokenizer, few, quiet, out_dir)
            else:
                train_ranklab(model, tokenizer, few, quiet, shared=side == "ranklab-shared")
            del model
    gc.collect()


# ---------------------------------------------------------------- report


def markdown_table(results: list[SideResult], cuda: bool) -> str:
    base = next((r for r in results if r.side == "trl"), None)
    head = "| side | preprocess s | train s | comparisons/s | ratio vs TRL | comparisons/s incl. preprocess | ratio |"
    head += " tokens/s | tokens/comparison | peak MiB | val accuracy |" + (" MFU |" if cuda else "")
    lines = [head, "|---" + "|---:" * (head.count("|") - 2) + "|"]
    for r in results:
        ratio = f"{r.comparisons_per_s / base.comparisons_per_s:.2f}x" if base else ""
        ratio_all = (
            f"{r.comparisons_per_s_with_preprocessing / base.comparisons_per_s_with_preprocessing:.2f}x" if base else ""
        )
        row = (
            f"| {r.side} | {r.preprocess_s:.2f} | {r.train_s:.2f} | {r.comparisons_per_s:,.0f} | {ratio} | "
            f"{r.comparisons_per_s_with_preprocessing:,.0f} | {ratio_all} | {r.tokens_per_s:,.0f} | "
            f"{r.tokens_per_comparison:.1f} | "
            f"{r.peak_mib:,.0f} | {r.val_accuracy:.3f} |"
        )
        lines.append(row + (f" {r.mfu:.3f} |" if cuda and r.mfu is not None else ""))
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, SIDES, lr=1e-4, max_length=4096)
    parser.add_argument("--prompts", type=int, default=64, help="tasks (one prompt, K ranked completions each)")
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--response-tokens", type=int, default=16)
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=8, help="tasks per optimizer step (x C(K,2) pairs for TRL)")
    parser.add_argument("--trl-grad-accum", type=int, default=1, help="TRL micro-batches per step (memory)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="accelerator peak, for MFU (H100/H200 bf16)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device, sides = start_run(args, SIDES)

    tokenizer = build_tiny_tokenizer()
    tasks = make_tasks(args.prompts, args.k, args.prompt_tokens, args.response_tokens, args.seed)
    train, val = split_tasks(tasks, args.val_fraction, seed=args.seed)
    config = model_config(args.model, len(tokenizer), args.max_length)
    torch.manual_seed(args.seed)
    with torch.device(device):
        initial_model = build_reward_model(config, pad_token_id=int(tokenizer.pad_token_id))
    initial = {name: t.detach().to("cpu", copy=True) for name, t in initial_model.state_dict().items()}
    n_params = sum(p.numel() for p in initial_model.parameters())
    initial_accuracy = evaluate_reward_model(initial_model, tokenizer, val, max_length=args.max_length).accuracy
    del initial_model

    def make_model() -> torch.nn.Module:
        return fresh_model(config, initial, int(tokenizer.pad_token_id), device)

    warm_up(make_model, tokenizer, train, args, sides)
    results = [run_side(side, make_model, tokenizer, train, val, args, device) for side in sides]

    sample = tokenizer.apply_chat_template(
        [{"role": "user", "content": train[0].prompt}, {"role": "assistant", "content": train[0].completions[0]}],
        tokenize=False,
    )
    seq_tokens = len(tokenizer(sample, add_special_tokens=False)["input_ids"])
    print(
        f"{run_header(args, n_params, device)}; {len(train)} train / {len(val)} val tasks, K={args.k}, "
        f"{args.epochs} epoch(s), {seq_tokens} tokens per prompt+completion; validation accuracy before training "
        f"{initial_accuracy:.3f}"
    )
    print(markdown_table(results, device.type == "cuda"))
    if args.json:
        payload = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": machine(device),
            "params": n_params,
            "tokens_per_sequence": seq_tokens,
            "initial_val_accuracy": initial_accuracy,
            "results": [asdict(r) | {"comparisons_per_s": r.comparisons_per_s, "tokens_per_s": r.tokens_per_s,
                                     "comparisons_per_s_with_preprocessing": r.comparisons_per_s_with_preprocessing,
                                     "tokens_per_comparison": r.tokens_per_comparison}
                        for r in results],
        }  # fmt: skip
        base = next((r for r in results if r.side == "trl"), None)
        if base:
            payload["ratios_vs_trl"] = {
                r.side: r.comparisons_per_s / base.comparisons_per_s for r in results if r.side != "trl"
            }
        args.json.write_text(json.dumps(payload, indent=2))
    if any(math.isnan(r.peak_mib) for r in results):
        print("peak memory unavailable on this platform")


if __name__ == "__main__":
    main()
