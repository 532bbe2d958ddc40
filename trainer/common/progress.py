"""Training progress for job handlers: throttled metrics, a progress bar, and a clean stop on worker shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable

from trainer.common.context import JobContext, WorkerStopping

METRICS_EVERY_S = 1.0
"""Training metrics reach the job's chart at most this often (and at the last step)."""


class Reporter:
    """Streams training metrics and progress to the job (throttled), and turns a worker stop into a clean stop."""

    def __init__(self, ctx: JobContext, *, start: float = 0.05, end: float = 0.9) -> None:
        self.ctx, self.stopping, self._sent, self.last_step = ctx, False, 0.0, 0
        self.start, self.end = start, end
        """The share of the job's progress bar training covers (loading before, evaluation after)."""

    def on_metrics(self, total: int) -> Callable[[int, dict[str, float]], None]:
        def report(step: int, metrics: dict[str, float]) -> None:
            self.last_step = step
            if time.monotonic() - self._sent >= METRICS_EVERY_S or step == total:
                self._sent = time.monotonic()
                self.ctx.metrics(step=step, **{k: round(v, 6) for k, v in metrics.items()})
            self.ctx.progress(self.start + (self.end - self.start) * min(1.0, step / total))

        return report

    def should_stop(self) -> bool:
        """Cancel and lost jobs raise at once; a stopping worker checkpoints first (then WorkerStopping)."""
        try:
            self.ctx.check_cancelled()
        except WorkerStopping:
            self.stopping = True
        return self.stopping
