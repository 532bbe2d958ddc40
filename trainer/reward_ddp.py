"""Reward-model training on several processes (one per GPU) under torchrun, launched by the `train_reward` job.

The job writes a spec (backbone, config, the fixed training tasks, checkpoint folder) and runs

    python -m torch.distributed.run --standalone --nproc_per_node N -m trainer.reward_ddp SPEC.json

Rank 0 prints one JSON line per optimizer step (the job forwards them to its metrics chart) and saves the trained
weights; every rank stops at the next step once the job creates the spec's stop file (cancel, worker shutdown),
after a checkpoint, so the next attempt resumes. NCCL on CUDA, gloo on CPU (the tests).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from trainer.reward_data import RankingRecord, TaskGroup

METRICS_PREFIX = "RANKLAB_METRICS "
DONE_PREFIX = "RANKLAB_DONE "


def write_spec(path: Path, *, backbone: Path, config: dict[str, Any], train: list[TaskGroup], **extra: Any) -> Path:
    """The spec a torchrun launch reads: everything the ranks need, nothing from the database."""
    spec = {"backbone": str(backbone), "config": config, "train": [asdict(t) for t in train], **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, default=str))
    return path


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


def launch(
    spec: Path,
    *,
    processes: int,
    on_metrics: Callable[[int, dict[str, float]], None],
    should_stop: Callable[[], bool],
    stop_file: Path,
    poll_s: float = 1.0,
) -> bool:
    """Run the ranks; forward rank 0's metrics; create `stop_file` once `should_stop()`. True when it stopped early."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "trainer.reward_ddp", str(spec)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    threading.Thread(target=lambda: errors.extend(proc.stderr or ()), daemon=True).start()
    stopped, finished = False, False
    while not finished:
        try:
            line = lines.get(timeout=poll_s)
        except queue.Empty:
            line = ""
        if line is None:
            finished = True
        elif line.startswith(METRICS_PREFIX):
            point = json.loads(line[len(METRICS_PREFIX) :])
            on_metrics(int(point.pop("step")), point)
        elif line.startswith(DONE_PREFIX):
            stopped = bool(json.loads(line[len(DONE_PREFIX) :])["stopped"])
        if not stop_file.exists() and should_stop():
            stop_file.touch()
    if proc.wait() != 0:
        raise RuntimeError(f"torchrun with {processes} processes failed:\n" + "".join(errors[-30:]))
    return stopped


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)  # end of output


def main(spec_path: str) -> None:
    """One rank: train on its share of every optimizer step; rank 0 reports and saves."""
    import torch
    import torch.distributed as dist
    from transformers import AutoTokenizer

    from trainer.reward import RewardConfig, train_reward_model
    from trainer.reward_model import build_reward_model

    spec = json.loads(Path(spec_path).read_text())
    cuda = spec.get("device", "cpu") == "cuda"
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank, local_rank = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    tokenizer = AutoTokenizer.from_pretrained(spec["backbone"])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(int(spec["config"]["seed"]))  # the same head on every rank
    model = build_reward_model(spec["backbone"], pad_token_id=int(tokenizer.pad_token_id))
    model.to(device)  # type: ignore[arg-type]  # transformers types .to oddly
    stop_file = Path(spec["stop_file"])

    def report(step: int, metrics: dict[str, float]) -> None:
        print(METRICS_PREFIX + json.dumps({"step": step, **metrics}), flush=True)

    result = train_reward_model(
        RewardConfig(**spec["config"]), model, tokenizer, read_tasks(spec["train"]), on_metrics=report,
        checkpoint_dir=Path(spec["checkpoint_dir"]), checkpoint_every=int(spec["checkpoint_every"]),
        should_stop=stop_file.exists,
    )  # fmt: skip
    if rank == 0:
        if not result.stopped:
            from app.storage import atomic_dir

            with atomic_dir(Path(spec["out_dir"]), replace=True) as tmp:
                model.save_pretrained(tmp)
        print(DONE_PREFIX + json.dumps({"stopped": result.stopped, "steps": result.steps}), flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
