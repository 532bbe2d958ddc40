"""`/metrics` for Prometheus: admins (cookie or token), or a scraper sending RANKLAB_METRICS_TOKEN as its bearer."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app import monitoring
from app.deps import SessionDep, SettingsDep, bearer_token, optional_user
from app.errors import Forbidden, NotAuthenticated
from app.models import Role
from app.services import monitoring as figures_service

router = APIRouter(tags=["ops"])


def metrics_reader(request: Request, session: SessionDep, settings: SettingsDep) -> None:
    """Let through the scrape token (compared in constant time) or a logged-in admin; 401/403 otherwise."""
    token, expected = bearer_token(request), settings.metrics_token
    if token is not None and expected is not None and hmac.compare_digest(token, expected.get_secret_value()):
        return
    user = optional_user(request, session, settings)
    if user is None:
        raise NotAuthenticated("log in as an admin, or send RANKLAB_METRICS_TOKEN as a bearer token, to read /metrics")
    if user.role != Role.admin:
        raise Forbidden("/metrics is for admins (or a scraper with RANKLAB_METRICS_TOKEN)")


@router.get("/metrics", include_in_schema=False, name="metrics", dependencies=[Depends(metrics_reader)])
def metrics(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Request counts and latencies by route, queue depth by job kind, workers, rankings and labelers, free disk."""
    figures = figures_service.figures(session, data_dir=settings.data_dir, stale_after_s=settings.worker_stale_after_s)
    body = monitoring.exposition(request.app.state.monitor, figures)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
