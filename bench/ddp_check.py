"""The reward and PPO rank modules under torchrun on real devices, tiny models: does every collective run?

On a GPU machine this runs NCCL (one rank per GPU, one rank on a single GPU: NCCL still refuses CPU tensors in its
collectives, which is how multi-GPU PPO failed on its first step before issue 20). On a CPU it runs gloo with two
ranks, which checks the script. Not a benchmark: it prints one JSON line per job with its seconds, and the rank
report (`trainer.common.launch.RanksFailed`) of a job that fails.

    python bench/ddp_check.py --device cuda            # on the GPU machine (bench/gpu_checks.sh runs it)
    python bench/ddp_check.py --device cpu --processes 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.common.launch import RanksFailed, launch, write_spec  # noqa: E402
from trainer.common.reward_model import build_reward_model, save_reward_model  # noqa: E402
from trainer.common.tiny import build_tiny_model  # noqa: E402
from trainer.common.tokenizer import load_tokenizer  # noqa: E402
from trainer.ppo.config import PPOConfig  # noqa: E402
from trainer.reward.config import RewardConfig  # noqa: E402
from trainer.reward.data import RankingRecord, TaskGroup  # noqa: E402
from trainer.reward.ddp import spec_tasks  # noqa: E402

PROMPTS = ["Write a short poem about the sea.", "What is the capital of France?", "Hello", "Rank the answers."]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--processes", type=int, default=None, help="ranks (default: every GPU, or 2 on a CPU)")
    return parser.parse_args(argv)


def tasks(n: int) -> list[TaskGroup]:
    """Rankings where the answer mentioning the fox is best."""
    answers = ["the quick brown fox", "the lazy dog", "a poem about the sky", "paris is the capital"]
    ranking = [RankingRecord([0, 1, 1, 2], labeler="l")]
    return [TaskGroup(i, PROMPTS[i % len(PROMPTS)], answers, ranking) for i in range(n)]


def run(name: str, module: str, spec: Path, processes: int) -> dict[str, object]:
    started, steps = time.perf_counter(), 0

    def count(step: int, metrics: dict[str, float]) -> None:
        nonlocal steps
        steps = step

    try:
        launch(spec, module=module, processes=processes, on_metrics=count, should_stop=lambda: False,
               stop_file=spec.parent / "stop")  # fmt: skip
    except RanksFailed as failed:
        print(failed, file=sys.stderr)
        return {"job": name, "ok": False, "steps": steps, "seconds": round(time.perf_counter() - started, 1)}
    return {"job": name, "ok": True, "steps": steps, "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    processes = args.processes or (max(1, torch.cuda.device_count()) if args.device == "cuda" else 2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sft = build_tiny_model(root / "sft")
        tokenizer = load_tokenizer(sft)
        reward = save_reward_model(build_reward_model(sft, pad_token_id=int(tokenizer.pad_token_id)), tokenizer,
                                   root / "reward")  # fmt: skip
        common = {"device": args.device, "checkpoint_every": 1}
        reward_cfg = RewardConfig(batch_size=2, max_length=64, learning_rate=1e-3)
        reward_spec = write_spec(
            root / "reward-run" / "spec.json", backbone=str(sft), config=asdict(reward_cfg),
            train=spec_tasks(tasks(4 * processes)), checkpoint_dir=str(root / "reward-ckpt"),
            stop_file=str(root / "reward-run" / "stop"), out_dir=str(root / "reward-out"), **common,
        )  # fmt: skip
        ppo_cfg = PPOConfig(steps=2, batch_size=4 * processes, minibatches=2, epochs=1, response_length=8,
                            generation_batch_size=4)  # fmt: skip
        versions = {name: {"id": i, "path": str(path)} for i, (name, path) in
                    enumerate((("start", sft), ("sft", sft), ("reward", reward)), start=1)}  # fmt: skip
        ppo_spec = write_spec(
            root / "ppo-run" / "spec.json", config=asdict(ppo_cfg), prompts=PROMPTS, ptx_texts=None,
            checkpoint_dir=str(root / "ppo-ckpt"), stop_file=str(root / "ppo-run" / "stop"),
            out_dir=str(root / "ppo-out"), **versions, **common,
        )  # fmt: skip
        results = [
            run("train_reward", "trainer.reward.ddp", reward_spec, processes),
            run("train_policy", "trainer.ppo.ddp", ppo_spec, processes),
        ]
    backend = "nccl" if args.device == "cuda" else "gloo"
    for result in results:
        print(json.dumps({"device": args.device, "backend": backend, "processes": processes, **result}))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
