"""Running test workers as forked gloo processes (the children inherit torch already imported: spawn re-imports it,
~8 s each on a loaded 2-core box)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import torch.multiprocessing as mp


def run_forked(
    worker: Callable[..., None], args: tuple[Any, ...], *, processes: int = 2, timeout_s: float = 120
) -> None:
    """`worker(rank, *args)` in `processes` forked processes; fails the test when one fails or all take too long."""
    context = mp.start_processes(worker, args=args, nprocs=processes, join=False, start_method="fork")
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{processes} gloo workers did not finish in {timeout_s:.0f} s")
