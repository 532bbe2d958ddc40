"""The worker's own row in the workers table (app.services.workers), so researchers see idle workers too.

Registered when the loop starts, refreshed while idle at most every heartbeat interval (the loop polls far more
often, and a write per poll would be wasted), refreshed by the job's heartbeat thread while a job runs, and marked
stopped when the loop ends. Importing this module is cheap: torch loads only to describe a CUDA device.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.models import JobKind
from app.services import workers as worker_service

logger = logging.getLogger("ranklab.worker")


def describe_device(device: str) -> dict[str, Any]:
    """What is known of the device: GPU count, name and memory on CUDA; the CPU count otherwise."""
    if device != "cuda":
        return {"cpus": os.cpu_count() or 0}
    import torch

    props = torch.cuda.get_device_properties(0)
    return {"gpus": torch.cuda.device_count(), "gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30)}


class Presence:
    """Keeps one worker's row: `idle()` at every turn of the loop (it writes only when due), `stopped()` at the end."""

    def __init__(
        self,
        *,
        worker_id: str,
        device: str,
        kinds: Sequence[JobKind],
        sessions: sessionmaker[Session],
        refresh_s: float,
        forget_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id, self.device, self.kinds, self.sessions = worker_id, device, tuple(kinds), sessions
        self.refresh_s, self.forget_after_s, self.clock = refresh_s, forget_after_s, clock
        self.capabilities = describe_device(device)
        self.registered, self.due = False, 0.0

    def idle(self) -> None:
        """Say the worker is alive and idle: registers it the first time (or if its row is gone), then refreshes it
        once `refresh_s` has passed or a job has ended. Raises OperationalError when the database refuses."""
        now = self.clock()
        if self.registered and now < self.due:
            return
        with self.sessions.begin() as session:
            if not (self.registered and worker_service.see_worker(session, worker_id=self.worker_id, job_id=None)):
                worker_service.register_worker(
                    session,
                    worker_id=self.worker_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    device=self.device,
                    kinds=self.kinds,
                    capabilities=self.capabilities,
                )
            worker_service.forget_workers(session, older_than_s=self.forget_after_s)
        self.registered, self.due = True, now + self.refresh_s

    def job_ended(self) -> None:
        """The row still says running: the next `idle()` writes at once."""
        self.due = 0.0

    def stopped(self) -> None:
        """The loop has ended; a database that refuses leaves the row to go stale ("not responding")."""
        if not self.registered:
            return
        try:
            with self.sessions.begin() as session:
                worker_service.stop_worker(session, worker_id=self.worker_id)
        except OperationalError:
            logger.warning("could not mark worker %s stopped; it shows as not responding", self.worker_id)
