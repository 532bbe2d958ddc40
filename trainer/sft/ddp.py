"""SFT on several processes (one per GPU) under torchrun, launched by the `train_sft` job.

The job writes a spec (base folder, config, the fixed training records, checkpoint folder) and runs
``python -m torch.distributed.run --standalone --nproc_per_node N -m trainer.sft.ddp SPEC.json``
(`trainer.common.launch`). Rank 0 reports each optimizer step and saves the trained weights; every rank stops at the
next step once the job creates the stop file (after a checkpoint). NCCL on CUDA, gloo on CPU (the tests).
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
from trainer.common.progress import Reporter
from trainer.common.versions import Version


def train_distributed(
    ctx: JobContext,
    params: Any,
    cfg: Any,
    data: Any,
    base: Version,
    checkpoint_dir: Path,
    processes: int,
    reporter: Reporter,
    total: int,
) -> Any:
    """Train under torchrun with `processes` ranks (DDP); returns the trained model loaded back in this process."""
    import torch

    from trainer.common.models import load_policy

    run = RunFolder.beside(checkpoint_dir)
    launch_job(
        ctx, run, module="trainer.sft.ddp", what="SFT", processes=processes, on_metrics=reporter.on_metrics(total),
        should_stop=reporter.should_stop, checkpoint_dir=checkpoint_dir, checkpoint_every=params.checkpoint_every,
        base=str(base.path), config=asdict(cfg), train=data.train,
    )  # fmt: skip
    model, _ = load_policy(run.out_dir, device=ctx.device, dtype=torch.float32)
    run.remove()
    return model


@record
def main(spec_path: str) -> None:
    """One rank: train on its share of every optimizer step; rank 0 reports and saves."""
    import torch

    from trainer.common.distributed import rank_session
    from trainer.common.models import load_policy, save_model_folder
    from trainer.sft.data import encode_records
    from trainer.sft.train import SftConfig, train_sft

    spec = json.loads(Path(spec_path).read_text())
    with rank_session(spec.get("device", "cpu")) as (rank, device):
        model, tokenizer = load_policy(spec["base"], device=device, dtype=torch.float32)
        cfg = SftConfig(**spec["config"])
        examples = encode_records(tokenizer, spec["train"], cfg.max_length)
        stop_file = Path(spec["stop_file"])
        result = train_sft(
            cfg, model, examples, pad_token_id=int(tokenizer.pad_token_id), on_metrics=report_metrics,
            checkpoint_dir=Path(spec["checkpoint_dir"]), checkpoint_every=int(spec["checkpoint_every"]),
            should_stop=stop_file.exists,
        )  # fmt: skip
        finish_rank(rank, stopped=result.stopped, steps=result.steps,
                    save=lambda: save_model_folder(model, tokenizer, Path(spec["out_dir"])))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
