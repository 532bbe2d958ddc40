"""The workers table: one row per worker process (`ranklab worker`), kept by the worker loop (trainer/worker.py).

Read by app.services.workers: the jobs page's Workers section, `GET /api/v1/workers` and the queue explanation of a
queued job. The jobs table knows a worker only while it runs a job; this table knows idle ones too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.enums import WorkerState
from app.models.base import Base, enum_column, utcnow


class Worker(Base):
    """A worker process: registered when it starts, seen while it polls or runs a job, stopped on a clean exit."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    """The worker id (host:pid:random) it also writes on the jobs it claims."""
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    device: Mapped[str] = mapped_column(String(32))
    """cuda or cpu: where its handlers run."""
    kinds: Mapped[list[Any]] = mapped_column(default=list)
    """The job kinds it takes (values of JobKind)."""
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What is known of its device: GPU count, name and memory, or CPU count."""
    state: Mapped[WorkerState] = mapped_column(enum_column(WorkerState), default=WorkerState.idle)
    current_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
