"""Peak memory of one job in the worker process: the resident set's high-water mark (Linux: reset through
/proc/self/clear_refs, read from VmHWM) and, on CUDA, the allocator's peak. Ranks under torchrun are other
processes and are not counted here."""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import OperationalError

if TYPE_CHECKING:
    from trainer.common.context import JobContext

logger = logging.getLogger("ranklab.worker")
_STATUS = Path("/proc/self/status")


def _vm_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def reset_peak(device: str) -> None:
    """Start measuring: the RSS high-water mark becomes the current RSS (and the CUDA peak is reset)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> dict[str, float]:
    """The peaks since `reset_peak`, in MiB: `peak_rss_mib` (where /proc exists) and `peak_cuda_mib` (CUDA)."""
    out: dict[str, float] = {}
    hwm = _vm_kib("VmHWM")
    if hwm is not None:
        out["peak_rss_mib"] = round(hwm / 1024, 1)
    if device == "cuda":
        import torch

        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def report_peak(ctx: JobContext, device: str) -> dict[str, float]:
    """The job's peak memory, said in its log (the worker process; torchrun ranks are their own); returns it.

    Best effort: a database that refuses the log line (SQLite locked past its timeout) loses only that line, never
    the job's outcome, which the worker records (and retries) next; the worker's own log keeps the figure."""
    peaks = peak_mib(device)
    if peaks:
        said = ", ".join(f"{k.removeprefix('peak_').removesuffix('_mib')} {v:,.0f} MiB" for k, v in peaks.items())
        logger.info("job %s: peak memory of this attempt: %s", ctx.job_id, said)
        with contextlib.suppress(OperationalError):
            ctx.log(f"peak memory of this attempt: {said}")
    return peaks
