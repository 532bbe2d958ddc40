"""One module per job kind: the worker side of the job-kind registry.

Each public module here declares

    KIND = JobKind.<kind>
    def run(ctx: JobContext, params: <Kind>Params) -> NewModelVersion | None: ...

where `params` is already parsed with the kind's params model from `app.schemas.jobs.JOB_KINDS` (the web side of
the registry). The worker finds the modules with `discover_handlers()`; nothing else lists the kinds. Keep the
module-level imports light (no torch, no transformers): discovery imports every module, and a kind's heavy
imports belong inside `run`, so they load only when a job of that kind runs. Helpers shared by several kinds go
in modules whose names start with `_` (skipped by discovery).
"""

from __future__ import annotations

import importlib
import pkgutil

from app.models import JobKind
from trainer.common.context import Handler


def discover_handlers() -> dict[JobKind, Handler]:
    """Every job kind this code base can run, with its handler, from the modules of this package."""
    handlers: dict[JobKind, Handler] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind, run = getattr(module, "KIND", None), getattr(module, "run", None)
        if not isinstance(kind, JobKind) or not callable(run):
            raise TypeError(f"{module.__name__} must declare KIND (a JobKind) and run(ctx, params)")
        if kind in handlers:
            raise TypeError(f"job kind {kind.value} has two handlers (the second in {module.__name__})")
        handlers[kind] = run
    return handlers
