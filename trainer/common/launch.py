"""torchrun for jobs: launch N ranks of a training module from the job's process, forward rank 0's metrics, stop
every rank at a checkpoint through a stop file (the job's cancel or the worker's shutdown), and when a rank fails,
say which one and why.

A rank module's `main(spec_path)` (decorated with torch's `record`, so an exception's traceback reaches torchrun)
calls `trainer.common.distributed.init_rank`, trains (reporting with `report_metrics` on rank 0), prints
`DONE_PREFIX {"stopped": ...}` on rank 0 and ends with `finish_rank`.

Each rank's stderr goes to its own file under the run's log folder (torchrun ``--log-dir``, ``--redirects 2``); a
failed launch raises `RanksFailed` whose message holds torchrun's summary and the tail of every rank's stderr,
the ranks that printed an error first, so the job log shows the failing rank's own traceback or abort message.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.common.context import JobContext, WorkerStopping

METRICS_PREFIX = "RANKLAB_METRICS "
DONE_PREFIX = "RANKLAB_DONE "
STDERR_TAIL_LINES = 40
"""Lines of each rank's stderr quoted when a launch fails."""
_ERROR_HINT = re.compile(r"Traceback|Error|terminate called|Aborted|Signal|Killed", re.IGNORECASE)


class RanksFailed(RuntimeError):
    """A torchrun launch ended with a failed rank; the message names it and quotes every rank's stderr."""


def write_spec(path: Path, **spec: Any) -> Path:
    """The JSON a launch's ranks read (folders, config, data): everything they need, nothing from the database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, default=str))
    return path


@dataclass(frozen=True)
class RunFolder:
    """Where one torchrun launch of a job keeps its spec, rank logs, stop file and (by default) its trained model."""

    root: Path

    @property
    def stop_file(self) -> Path:
        return self.root / "stop"

    @property
    def out_dir(self) -> Path:
        return self.root / "trained"

    @classmethod
    def beside(cls, checkpoint_dir: Path) -> RunFolder:
        """`<checkpoint>-ddp`, without the stop file a previous (stopped) attempt left."""
        run = cls(checkpoint_dir.with_name(checkpoint_dir.name + "-ddp"))
        run.stop_file.unlink(missing_ok=True)
        return run

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def launch_job(
    ctx: JobContext,
    run: RunFolder,
    *,
    module: str,
    what: str,
    processes: int,
    on_metrics: Callable[[int, dict[str, float]], None],
    should_stop: Callable[[], bool],
    checkpoint_dir: Path,
    checkpoint_every: int,
    out_dir: Path | None = None,
    **spec: Any,
) -> None:
    """A job's torchrun launch: write the spec (with the run's device, stop file, checkpoint and output folders), say
    so in the job log, run the ranks. `WorkerStopping` when the ranks stopped at a checkpoint (cancel, shutdown)."""
    path = write_spec(
        run.root / "spec.json", device=ctx.device, checkpoint_dir=str(checkpoint_dir),
        checkpoint_every=checkpoint_every, stop_file=str(run.stop_file), out_dir=str(out_dir or run.out_dir), **spec,
    )  # fmt: skip
    ctx.log(f"{what} on {processes} processes under torchrun (DDP, {'nccl' if ctx.device == 'cuda' else 'gloo'})")
    if launch(path, module=module, processes=processes, on_metrics=on_metrics, should_stop=should_stop,
              stop_file=run.stop_file):  # fmt: skip
        raise WorkerStopping(f"worker stopping: distributed {what} paused at a checkpoint")


def finish_rank(rank: int, *, stopped: bool, steps: int, save: Callable[[], object]) -> None:
    """The end of a rank's training: rank 0 saves the model (unless it stopped early) and tells the job."""
    if rank == 0:
        if not stopped:
            save()
        print(DONE_PREFIX + json.dumps({"stopped": stopped, "steps": steps}), flush=True)


def report_metrics(step: int, metrics: dict[str, float]) -> None:
    """One optimizer step's metrics as a line the launching job reads (rank 0 only calls it)."""
    print(METRICS_PREFIX + json.dumps({"step": step, **metrics}), flush=True)


def torchrun_command(module: str, spec: Path, processes: int, log_dir: Path) -> list[str]:
    """torchrun on this machine: `processes` ranks of `python -m module spec`, each rank's stderr in `log_dir`."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
        f"--log-dir={log_dir}", "--redirects=2", "-m", module, str(spec),
    ]  # fmt: skip


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
    """Run the ranks; forward rank 0's metrics; create `stop_file` once `should_stop()`. True when it stopped early.

    Raises `RanksFailed` (with every rank's stderr tail) when a rank fails. When `should_stop` or `on_metrics`
    raises (a cancelled or lost job), torchrun and its ranks are terminated before the error goes on.
    """
    log_dir = spec.parent / "rank-logs"
    shutil.rmtree(log_dir, ignore_errors=True)  # a previous attempt's logs
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = torchrun_command(module, spec, processes, log_dir)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        stopped = _follow(lines, on_metrics, should_stop, stop_file, poll_s)
    except BaseException:  # the job was cancelled or lost (or the worker failed): its ranks must not run on
        _terminate(proc)
        raise
    if proc.wait() != 0:
        reader.join(timeout=5)
        raise RanksFailed(failure_report(processes, errors, log_dir))
    return stopped


def _follow(
    lines: queue.Queue[str | None],
    on_metrics: Callable[[int, dict[str, float]], None],
    should_stop: Callable[[], bool],
    stop_file: Path,
    poll_s: float,
) -> bool:
    """Read the ranks' output to its end: forward metrics, note the stop, create the stop file when asked."""
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
    return stopped


def _terminate(proc: subprocess.Popen[str], grace_s: float = 30.0) -> None:
    """Stop torchrun and its ranks (SIGTERM, which torchrun passes on to them; SIGKILL after `grace_s`)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rank_stderr(log_dir: Path) -> dict[int, str]:
    """Each local rank's stderr file under a torchrun ``--log-dir`` (the newest attempt's)."""
    found: dict[int, Path] = {}
    for path in sorted(log_dir.glob("**/attempt_*/*/stderr.log")):
        found[int(path.parent.name)] = path  # sorted: a later attempt replaces an earlier one
    return {rank: path.read_text(errors="replace") for rank, path in sorted(found.items())}


def failure_report(processes: int, torchrun_stderr: list[str], log_dir: Path) -> str:
    """What a failed launch says: torchrun's own summary, then each rank's stderr tail, ranks with an error first."""
    tails = rank_stderr(log_dir)
    order = sorted(tails, key=lambda rank: (not _ERROR_HINT.search(tails[rank]), rank))
    parts = [f"torchrun with {processes} processes failed."]
    for rank in order:
        tail = tails[rank].splitlines()[-STDERR_TAIL_LINES:]
        parts.append(f"--- rank {rank} stderr (last {len(tail)} lines) ---\n" + "\n".join(tail))
    if not tails:
        parts.append(f"(no rank stderr found under {log_dir})")
    starts = [i for i, line in enumerate(torchrun_stderr) if "ChildFailedError" in line]
    summary = torchrun_stderr[starts[-1] :] if starts else torchrun_stderr  # its summary, not its own traceback
    parts.append("--- torchrun ---\n" + "".join(summary[-STDERR_TAIL_LINES:]).rstrip())
    return "\n".join(parts)


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)  # end of output
