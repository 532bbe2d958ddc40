"""What the benchmarks share: the synthetic K-way ranking data, the model presets, peak-memory measurement, quiet
libraries. Used by reward_vs_trl, dpo_vs_trl, sft_vs_trl and the other training benchmarks."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import os
import platform
import random
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.reward.data import RankingRecord, TaskGroup  # noqa: E402

MARKER = "France"
FILLER = ["the", "and", "of", "is", "in", "you", "are", "an", "all", "am", "be", "capital", "answ", "mod", "qu", "re"]
MODELS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    "smollm2-135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                     "num_key_value_heads": 3, "vocab_size": 49152, "rope_theta": 100000.0,
                     "tie_word_embeddings": True},
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 49152, "rope_theta": 500000.0, "tie_word_embeddings": True},
}  # fmt: skip


def make_tasks(n: int, k: int, prompt_tokens: int, response_tokens: int, seed: int) -> list[TaskGroup]:
    """`n` tasks of `k` completions, strictly ranked by how many marker words each holds (more is better)."""
    if response_tokens < k:
        raise ValueError(f"--response-tokens must be >= K={k} (room for K-1 markers and a filler word)")
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        prompt = " ".join(rng.choice(FILLER) for _ in range(prompt_tokens))
        ranks = rng.sample(range(k), k)  # completion c has rank ranks[c], 0 = best
        completions = []
        for rank in ranks:
            words = [MARKER] * (k - 1 - rank) + [rng.choice(FILLER) for _ in range(response_tokens - (k - 1 - rank))]
            rng.shuffle(words)
            completions.append(" ".join(words))
        tasks.append(TaskGroup(i, prompt, completions, [RankingRecord(ranks, labeler="synthetic")]))
    return tasks


def as_preference_rows(tasks: list[TaskGroup]) -> list[dict[str, Any]]:
    """TRL's conversational preference rows: one per strict pair (chosen = better ranked) of every ranking."""
    rows = []
    for task in tasks:
        prompt = [{"role": "user", "content": task.prompt}]
        for ranking in task.rankings:
            for i, ri in enumerate(ranking.ranks):
                for j, rj in enumerate(ranking.ranks):
                    if 0 <= ri < rj:
                        chosen = [{"role": "assistant", "content": task.completions[i]}]
                        rejected = [{"role": "assistant", "content": task.completions[j]}]
                        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def model_config(name: str, vocab_size: int, max_positions: int):
    from transformers import LlamaConfig

    size = {"vocab_size": vocab_size} | MODELS[name]
    return LlamaConfig(max_position_embeddings=max_positions, bos_token_id=1, eos_token_id=2, **size)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _vm_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


class PeakMemory:
    """Peak memory of a block, in MiB: CUDA max allocated, or CPU peak RSS rise (reset via clear_refs)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib = float("nan")

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            with contextlib.suppress(OSError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)
                Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            self._start = _vm_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        cuda = self.device.type == "cuda"
        peak = torch.cuda.max_memory_allocated(self.device) if cuda else _vm_kib("VmHWM") * 1024
        self.mib = (peak - self._start) / 2**20


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "trl", "datasets", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        import datasets
        import transformers

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        transformers.logging.set_verbosity_error()


# ---------------------------------------------------------------- what every ranklab-vs-TRL benchmark runs the same way


def add_run_args(parser: argparse.ArgumentParser, sides: tuple[str, ...], *, lr: float, max_length: int) -> None:
    """The options every side-by-side benchmark takes: model preset, device, dtype, epochs, threads, sides, seed."""
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16 = autocast (CUDA)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--max-length", type=int, default=max_length)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads, both sides")
    parser.add_argument("--sides", default=",".join(sides))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the numbers here")


def start_run(args: argparse.Namespace, known: tuple[str, ...]) -> tuple[torch.device, list[str]]:
    """Quiet libraries, the thread count, the device; refuse bf16 on CPU and unknown sides. (device, sides)."""
    quiet_libraries()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.dtype == "bf16" and device.type != "cuda":
        raise SystemExit("--dtype bf16 is autocast on CUDA only (ranklab trains float32 on CPU); use --dtype fp32")
    sides = args.sides.split(",")
    if unknown := set(sides) - set(known):
        raise SystemExit(f"unknown sides {sorted(unknown)}; choose from {known}")
    return device, sides


def initial_causal_lm(config: Any, seed: int) -> tuple[dict[str, torch.Tensor], int]:
    """The weights both sides start from (a Llama of `config`, seeded) and its parameter count."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, sum(p.numel() for p in model.parameters())


def fresh_causal_lm(config: Any, initial: dict[str, torch.Tensor], device: torch.device) -> Any:
    """A Llama with the shared initial weights on `device`, float32 (bf16 is autocast on CUDA by both sides)."""
    from transformers import LlamaForCausalLM

    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.load_state_dict(initial)
    return model


def machine(device: torch.device) -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None}  # fmt: skip


def run_header(args: argparse.Namespace, n_params: int, device: torch.device) -> str:
    """The first words of a benchmark's printout: model, size, device, dtype, torch, threads, machine."""
    return (
        f"model {args.model} ({n_params / 1e6:.2f}M params), device {device}, dtype {args.dtype}, torch "
        f"{torch.__version__}, threads {torch.get_num_threads()}, nproc {os.cpu_count()}, {platform.machine()}"
    )


def write_json(args: argparse.Namespace, device: torch.device, n_params: int, results: list[dict[str, Any]],
               rate: str, **extra: Any) -> None:  # fmt: skip
    """`--json`: the arguments, the machine, every side's numbers and each side's `rate` as a ratio to TRL's."""
    if not args.json:
        return
    base = next((r for r in results if r["side"] == "trl"), None)
    ratios = {r["side"]: r[rate] / base[rate] for r in results if base and r["side"] != "trl"}
    payload = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "machine": machine(device), "params": n_params, **extra, "results": results,
               "ratios_vs_trl": ratios}  # fmt: skip
    args.json.write_text(json.dumps(payload, indent=2))
