"""Reward-model training comparisons/s: TRL's chosen/rejected layout against ranklab's K-way groups.

    python bench/reward_throughput.py --model tiny --device cpu --k 9 --tasks 16 --rows 72
    python bench/reward_throughput.py --model smollm2-random --device cuda --dtype bf16 --k 9 --tasks 256 \\
        --rows 512 --prompt-words 200 --response-words 120

Every mode trains (forward, backward, AdamW step) on the same synthetic tasks, K completions each, fully
ranked (C(K,2) comparisons per task), with the same row budget per forward pass:
- ``trl-pairs``: every comparison is a chosen row and a rejected row (2*C(K,2) rows per task), as TRL's
  RewardTrainer feeds them;
- ``ranklab``: one row per completion (K rows per task), every comparison scored from those K rewards;
- ``ranklab-shared``: as ranklab, with each task's prompt encoded once and shared by its K completions.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.common.reward_model import build_reward_model  # noqa: E402
from trainer.common.tiny import build_tiny_tokenizer  # noqa: E402
from trainer.reward.config import RewardConfig  # noqa: E402
from trainer.reward.data import RankingRecord, TaskGroup  # noqa: E402
from trainer.reward.train import train_reward_model  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "labelers",
    "rank",
    "answers",
    "from",
    "best",
    "to",
    "worst",
]


def tasks(n: int, k: int, prompt_words: int, response_words: int, seed: int = 0) -> list[TaskGroup]:
    rng = random.Random(seed)

    def text(n_words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n_words))

    ranks = list(range(k))
    return [
        TaskGroup(i, text(prompt_words), [text(response_words) for _ in range(k)], [RankingRecord(ranks)])
        for i in range(n)
    ]


def as_pairs(groups: list[TaskGroup]) -> list[TaskGroup]:
    """TRL's layout: one 2-completion task (chosen, rejected) per comparison."""
    out = []
    for task in groups:
        k = len(task.completions)
        for i in range(k):
            for j in range(i + 1, k):
                pair = [task.completions[i], task.completions[j]]
                out.append(TaskGroup(len(out), task.prompt, pair, [RankingRecord([0, 1])]))
    return out


def model_and_tokenizer(name: str, device: torch.device):
    from transformers import AutoTokenizer, LlamaConfig

    if name == "tiny":
        tokenizer = build_tiny_tokenizer()
        size = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
        config = LlamaConfig(vocab_size=len(tokenizer), num_key_value_heads=2, max_position_embeddings=4096, **size)
    else:
        from trainer.common.smollm2 import smollm2_gguf_path
        from trainer.common.tokenizer import prepare_tokenizer

        gguf = smollm2_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        prepare_tokenizer(tokenizer, max_length=8192)
        config = LlamaConfig(
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
            num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
            rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        )  # fmt: skip
    with torch.device(device):
        model = build_reward_model(config, pad_token_id=int(tokenizer.pad_token_id))
    return model, tokenizer


def run(mode: str, args: argparse.Namespace, device: torch.device) -> float:
    """Comparisons per second of one training pass over the tasks (after one warm-up step)."""
    groups = tasks(args.tasks, args.k, args.prompt_words, args.response_words)
    comparisons = len(groups) * args.k * (args.k - 1) // 2
    data = as_pairs(groups) if mode == "trl-pairs" else groups
    rows_per_task = 2 if mode == "trl-pairs" else args.k
    cfg = RewardConfig(
        learning_rate=1e-5, batch_size=max(1, args.rows // rows_per_task), max_length=args.max_length,
        shared_prompt=mode == "ranklab-shared", bf16=args.dtype == "bf16", warmup_ratio=0.0,
    )  # fmt: skip
    model, tokenizer = model_and_tokenizer(args.model, device)
    train_reward_model(cfg, model, tokenizer, data[: cfg.batch_size])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_reward_model(cfg, model, tokenizer, data)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return comparisons / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "smollm2-random"], default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--rows", type=int, default=72, help="sequence rows per forward pass")
    parser.add_argument("--prompt-words", type=int, default=60)
    parser.add_argument("--response-words", type=int, default=40)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--modes", default="trl-pairs,ranklab,ranklab-shared")
    args = parser.parse_args()
    device = torch.device(args.device)
    results = {mode: run(mode, args, device) for mode in args.modes.split(",")}
    base = results.get("trl-pairs")
    for mode, rate in results.items():
        speedup = f"{rate / base:6.1f}x" if base else ""
        print(f"{mode:15s} {rate:12.1f} comparisons/s {speedup}")


if __name__ == "__main__":
    main()
