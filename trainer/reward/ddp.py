"""Reward-model training on several processes (one per GPU) under torchrun, launched by the `train_reward` job.

The job writes a spec (backbone, config, the fixed training tasks, checkpoint folder) and runs

    python -m torch.distributed.run --standalone --nproc_per_node N -m trainer.reward.ddp SPEC.json

(`trainer.common.launch`). Rank 0 prints one JSON line per optimizer step (the job forwards them to its metrics
chart) and saves the trained weights; every rank stops at the next step once the job creates the spec's stop file
(cancel, worker shutdown), after a checkpoint, so the next attempt resumes. NCCL on CUDA, gloo on CPU (the tests).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import record

from trainer.common.launch import finish_rank, report_metrics
from trainer.reward.data import RankingRecord, TaskGroup


def spec_tasks(train: list[TaskGroup]) -> list[dict[str, Any]]:
    """TaskGroups as the spec's JSON."""
    return [asdict(t) for t in train]


def read_tasks(rows: list[dict[str, Any]]) -> list[TaskGroup]:
    """TaskGroups back from the spec's JSON."""
    return [
        TaskGroup(
            r["task_id"],
            r["prompt"],
            r["completions"],
            [RankingRecord(**x) for x in r["rankings"]],
            r.get("completion_ids"),
        )  # fmt: skip
        for r in rows
    ]


@record
def main(spec_path: str) -> None:
    """One rank: train on its share of every optimizer step; rank 0 reports and saves."""
    import torch

    from app.storage import atomic_dir
    from trainer.common.distributed import rank_session
    from trainer.common.reward_model import build_reward_model
    from trainer.common.tokenizer import load_tokenizer
    from trainer.reward.config import RewardConfig
    from trainer.reward.train import train_reward_model

    spec = json.loads(Path(spec_path).read_text())
    with rank_session(spec.get("device", "cpu")) as (rank, device):
        tokenizer = load_tokenizer(spec["backbone"])
        torch.manual_seed(int(spec["config"]["seed"]))  # the same head on every rank
        model = build_reward_model(spec["backbone"], pad_token_id=int(tokenizer.pad_token_id))
        model.to(device)  # type: ignore[arg-type]  # transformers types .to oddly
        stop_file = Path(spec["stop_file"])
        result = train_reward_model(
            RewardConfig(**spec["config"]), model, tokenizer, read_tasks(spec["train"]), on_metrics=report_metrics,
            checkpoint_dir=Path(spec["checkpoint_dir"]), checkpoint_every=int(spec["checkpoint_every"]),
            should_stop=stop_file.exists,
        )  # fmt: skip

        def save() -> None:
            with atomic_dir(Path(spec["out_dir"]), replace=True) as tmp:
                model.save_pretrained(tmp)

        finish_rank(rank, stopped=result.stopped, steps=result.steps, save=save)


if __name__ == "__main__":
    main(sys.argv[1])
