"""Home page and health check."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import text

from app.config import ROOT_DIR
from app.deps import OptionalUser, SessionDep
from app.models import Role, User, UserStatus
from app.schemas import HealthRead
from app.web import render, templates

router = APIRouter()


@router.get("/", response_class=HTMLResponse, name="home")
def home(request: Request, user: OptionalUser) -> Response:
    if user is None:
        return RedirectResponse(request.app.url_path_for("login_page"), status_code=303)
    return render(request, "home.html", user=user, view=home_view(user))


@router.get("/api/docs", response_class=HTMLResponse, name="api_docs", include_in_schema=False)
def api_docs(request: Request) -> Response:
    """Swagger UI from the vendored files, under the site's own CSP (no CDN, no inline script)."""
    openapi_url = request.app.openapi_url or "/api/openapi.json"
    # the session's CSRF token, so "Try it out" can write with the login cookie (api-docs.js sends it as a header)
    context = {"openapi_url": openapi_url, "csrf_token": request.state.session.csrf}
    return templates.TemplateResponse(request, "api_docs.html", context)


STATUS_NOTES = {
    UserStatus.pending_review: "A researcher is reviewing your screening answers; you can rank again once approved.",
    UserStatus.paused: "Your account is paused; a researcher will get back to you.",
    UserStatus.suspended: "Your account is suspended; a researcher will get back to you.",
    UserStatus.rejected: "Your account did not pass screening; a researcher will get back to you.",
}


def home_view(user: User) -> dict[str, str]:
    """The home page's sentences: 'an admin', not 'a admin'; why a labeler cannot rank, when they cannot."""
    role = user.role.value
    return {
        "role": ("an " if role[0] in "aeiou" else "a ") + role,
        "status": user.status.value.replace("_", " "),
        "note": STATUS_NOTES.get(user.status, "") if user.role == Role.labeler else "",
    }


@router.get("/favicon.ico", include_in_schema=False, name="favicon")
def favicon() -> FileResponse:
    """Browsers ask for /favicon.ico on their own (the pages also link the SVG)."""
    return FileResponse(ROOT_DIR / "app" / "static" / "favicon.ico", media_type="image/x-icon")


@router.get("/healthz", response_model=HealthRead, name="healthz", tags=["ops"])
def healthz(session: SessionDep) -> Response | HealthRead:
    start = time.perf_counter()
    try:
        session.execute(text("SELECT 1")).scalar_one()
    except Exception as exc:  # noqa: BLE001 - report any database failure as unhealthy
        return JSONResponse({"status": "error", "database": type(exc).__name__, "db_roundtrip_ms": -1}, status_code=503)
    ms = (time.perf_counter() - start) * 1000
    return HealthRead(status="ok", database=session.get_bind().dialect.name, db_roundtrip_ms=round(ms, 3))
