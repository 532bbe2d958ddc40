"""DPO on several processes (one per GPU) under torchrun, launched by the `train_dpo` job.

The job writes a spec (start folder, config, the training tasks with their reference log-probs already computed,
checkpoint folder) and runs ``python -m torch.distributed.run --standalone --nproc_per_node N -m trainer.dpo.ddp
SPEC.json`` (`trainer.common.launch`); rank 0 reports and saves; every rank stops at the next step once the job
creates the stop file (after a checkpoint). NCCL on CUDA, gloo on CPU (the tests).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import record

from trainer.common.context import JobContext
from trainer.common.launch import RunFolder, finish_rank, launch_job, report_metrics
from trainer.common.packing import TokenSequence
from trainer.common.progress import Reporter
from trainer.common.rankings import RankingRecord
from trainer.common.versions import Version
from trainer.dpo.data import DpoTask


def spec_tasks(tasks: list[DpoTask]) -> list[dict[str, Any]]:
    return [asdict(t) for t in tasks]


def read_tasks(rows: list[dict[str, Any]]) -> list[DpoTask]:
    return [
        DpoTask(
            r["task_id"],
            [TokenSequence(tuple(s["input_ids"]), s["n_prompt"]) for s in r["sequences"]],
            [RankingRecord(**x) for x in r["rankings"]],
            list(r["reference_logps"]),
        )  # fmt: skip
        for r in rows
    ]


def train_distributed(
    ctx: JobContext, params: Any, cfg: Any, train: list[DpoTask], start: Version, checkpoint_dir: Path,
    processes: int, reporter: Reporter,
) -> Any:  # fmt: skip
    """Train under torchrun with `processes` ranks (DDP); returns the trained policy loaded back in this process."""
    import torch

    from trainer.common.loop import steps_per_epoch
    from trainer.common.models import load_policy

    run = RunFolder.beside(checkpoint_dir)
    total = max(1, steps_per_epoch(len(train), cfg.batch_size, cfg.grad_accum_steps * processes) * cfg.epochs)
    launch_job(
        ctx, run, module="trainer.dpo.ddp", what="DPO", processes=processes, on_metrics=reporter.on_metrics(total),
        should_stop=reporter.should_stop, checkpoint_dir=checkpoint_dir, checkpoint_every=params.checkpoint_every,
        start=str(start.path), config=asdict(cfg), train=spec_tasks(train),
    )  # fmt: skip
    policy, _ = load_policy(run.out_dir, device=ctx.device, dtype=torch.float32)
    run.remove()
    return policy


@record
def main(spec_path: str) -> None:
    """One rank: train on its share of every optimizer step; rank 0 reports and saves."""
    import torch

    from trainer.common.distributed import rank_session
    from trainer.common.models import load_policy, save_model_folder
    from trainer.dpo.train import DpoConfig, train_dpo

    spec = json.loads(Path(spec_path).read_text())
    with rank_session(spec.get("device", "cpu")) as (rank, device):
        policy, tokenizer = load_policy(spec["start"], device=device, dtype=torch.float32)
        stop_file = Path(spec["stop_file"])
        result = train_dpo(
            DpoConfig(**spec["config"]), policy, read_tasks(spec["train"]), pad_token_id=int(tokenizer.pad_token_id),
            on_metrics=report_metrics, checkpoint_dir=Path(spec["checkpoint_dir"]),
            checkpoint_every=int(spec["checkpoint_every"]), should_stop=stop_file.exists,
        )  # fmt: skip
        finish_rank(rank, stopped=result.stopped, steps=result.steps,
                    save=lambda: save_model_folder(policy, tokenizer, Path(spec["out_dir"])))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
