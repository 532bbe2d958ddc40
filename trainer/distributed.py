"""torchrun for jobs: launch N ranks of a training module from the job's process, forward rank 0's metrics, and
stop every rank at a checkpoint through a stop file (the job's cancel or the worker's shutdown).

A rank module's `main(spec_path)` calls `init_rank`, trains (reporting with `report_metrics` on rank 0), prints
`DONE_PREFIX {"stopped": ...}` on rank 0 and ends with `finish_rank`.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

METRICS_PREFIX = "RANKLAB_METRICS "
DONE_PREFIX = "RANKLAB_DONE "


def init_rank(device: str) -> tuple[int, Any]:
    """Join the process group (NCCL on CUDA, gloo on CPU); returns (rank, this rank's torch device)."""
    import torch
    import torch.distributed as dist

    cuda = device == "cuda"
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank, local_rank = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    here = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(here)
    return rank, here


def finish_rank() -> None:
    """Wait for every rank, then leave the process group."""
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


def report_metrics(step: int, metrics: dict[str, float]) -> None:
    """One optimizer step's metrics as a line the launching job reads (rank 0 only calls it)."""
    print(METRICS_PREFIX + json.dumps({"step": step, **metrics}), flush=True)


def launch(
    spec: Path,
    *,
    module: str,
    processes: int,
    on_metrics: Callable[[int, dict[str, float]], None],
    should_stop: Callable[[], bool],
    stop_file: Path,
    poll_s: float = 1.0,
) -> bool:
    """Run the ranks; forward rank 0's metrics; create `stop_file` once `should_stop()`. True when it stopped early."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", module, str(spec)]  # fmt: skip
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
