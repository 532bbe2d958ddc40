"""Prometheus metrics (`/metrics`, the text format of the `prometheus-client` package).

Kept by this process as requests are answered: request counts and latencies by method, route template (never the
raw path, so ids do not explode the series) and status. Read from the database at each scrape, so every web process
answers the same: jobs queued and running by kind, the oldest queued job's age, workers by status, rankings (total
and in the last hour), labelers who ranked in the last hour, and the data folder's free disk.

With several web processes (`uvicorn --workers N`), set PROMETHEUS_MULTIPROC_DIR to an empty folder shared by them
before they start: the request figures of all of them are then summed at each scrape (prometheus_client's
multiprocess mode). Without it each process reports its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services.monitoring import Figures

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Monitor:
    """This process's request metrics, in a registry of its own (one per app, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "ranklab_http_requests", "HTTP requests answered, by method, route template and status.", labels,
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "ranklab_http_request_duration_seconds", "Seconds from request to the end of the response, by route.",
            labels, registry=self.registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def request_families(self) -> list[Metric]:
        """The request metrics: this process's, or every process's in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            shared = CollectorRegistry()
            MultiProcessCollector(shared)
            return list(shared.collect())
        return list(self.registry.collect())


def route_label(scope: Scope) -> str:
    """The route template that answered (`/api/v1/jobs/{job_id}`), `/static` for static files, else `unmatched`."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if template:
        return str(template)
    return "/static" if str(scope.get("path", "")).startswith("/static/") else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request into the app's Monitor (pure ASGI, like the access log)."""

    def __init__(self, app: ASGIApp, *, monitor: Monitor) -> None:
        self.app, self.monitor = app, monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.monitor.observe(
                method=scope["method"], route=route_label(scope), status=status["code"],
                seconds=time.perf_counter() - start,
            )  # fmt: skip


def figure_families(figures: Figures) -> list[Metric]:
    """The database's figures as metric families."""
    jobs = GaugeMetricFamily("ranklab_jobs", "Jobs queued or running, by kind and status.", labels=["kind", "status"])
    for (kind, status), n in sorted(figures.jobs.items()):
        jobs.add_metric([kind, status], n)
    workers = GaugeMetricFamily(
        "ranklab_workers", "Workers by status (running, idle, not_responding).", labels=["status"]
    )
    for status, n in sorted(figures.workers.items()):
        workers.add_metric([status], n)
    rankings = CounterMetricFamily("ranklab_rankings", "Rankings stored (rate() gives rankings per second).")
    rankings.add_metric([], figures.rankings)
    gauges = [
        ("ranklab_workers_alive", "Workers seen within the stale time (idle or running).", figures.workers_alive),
        ("ranklab_rankings_last_hour", "Rankings submitted in the last hour.", figures.rankings_last_hour),
        ("ranklab_labelers_active", "Labelers who submitted a ranking in the last hour.", figures.labelers_active),
        ("ranklab_oldest_queued_job_age_seconds", "Age of the oldest queued job (0: none).", figures.oldest_queued_s),
        ("ranklab_data_free_bytes", "Free bytes on the disk of the data folder.", figures.data_free_bytes),
    ]
    return [jobs, workers, rankings, *(GaugeMetricFamily(name, doc, value=value) for name, doc, value in gauges)]


class _Families:
    """A one-off collector over metric families collected already."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def exposition(monitor: Monitor, figures: Figures) -> bytes:
    """The Prometheus text format of the request metrics and the database's figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*monitor.request_families(), *figure_families(figures)]))
    return generate_latest(registry)
