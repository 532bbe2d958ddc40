"""create_app(): routers, static files, templates and error handlers. Never migrates, never imports torch."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import openapi
from app.config import DEV_KEY_LOG_WARNING, Settings, get_settings
from app.deps import UserCard
from app.errors import DomainError, InvalidInput, NotAuthenticated, RateLimited
from app.logging_setup import configure_logging
from app.middleware import (
    REQUEST_ID_HEADER,
    AccessLogMiddleware,
    SecurityHeadersMiddleware,
    SessionMiddleware,
    security_headers,
)
from app.monitoring import MetricsMiddleware, Monitor
from app.routes import (
    admin_pages,
    api_agreement,
    api_demonstrations,
    api_labeling,
    auth,
    dashboard,
    demonstrations_pages,
    jobs,
    jobs_pages,
    labeling,
    models_page,
    monitoring,
    pages,
    researcher,
    rounds,
    users,
)
from app.security import Signer
from app.web import render

log = logging.getLogger("ranklab")
DATABASE_RETRY_AFTER_S = 5

# Every router of the app; a feature adds its module here.
ROUTERS = [
    pages,
    auth,
    users,
    api_labeling,
    api_demonstrations,
    labeling,
    researcher,
    demonstrations_pages,
    jobs,
    jobs_pages,
    models_page,
    rounds,
    api_agreement,
    dashboard,
    admin_pages,
    monitoring,
]


def _user_of(request: Request) -> UserCard | None:
    """The logged-in user when this request got as far as knowing them (their error page keeps its menu)."""
    return getattr(request.state, "user", None)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "")


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    if _wants_json(request):
        return JSONResponse({"detail": exc.message, **exc.details}, status_code=exc.status_code, headers=headers)
    if isinstance(exc, NotAuthenticated):
        login = request.app.url_path_for("login_page")
        return RedirectResponse(f"{login}?next={request.url.path}", status_code=303)
    return render(
        request,
        "error.html",
        user=_user_of(request),
        status_code=exc.status_code,
        message=exc.message,
        code=exc.status_code,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in errors]
    if not _wants_json(request):  # a person at a browser (a hand-edited ?kind=...): a page, not JSON
        message = "This address asks for something the page does not know: " + "; ".join(parts)
        return render(request, "error.html", user=_user_of(request), status_code=422, message=message, code=422)
    return JSONResponse(
        {"detail": "; ".join(parts), "errors": [{"loc": e["loc"], "msg": e["msg"]} for e in errors]},
        status_code=422,
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (FastAPI makes one route per method, and Starlette's 405 names
    only the first route's)."""
    methods, path = {"OPTIONS"}, request.url.path
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= route.methods
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such path, method not allowed): JSON for the API, a page for a browser.

    OPTIONS on a path answers 204 with every method of the path in `Allow`; any other method the path does not
    serve answers 405 with the same list."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        allow = {"Allow": ", ".join(_allowed_methods(request))}
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=allow)
        exc = StarletteHTTPException(
            405, detail=f"{request.method} is not allowed here; use {allow['Allow']}", headers=allow
        )
    if _wants_json(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    message = f"There is no page at {request.url.path}." if exc.status_code == 404 else str(exc.detail)
    return render(
        request,
        "error.html",
        user=_user_of(request),
        status_code=exc.status_code,
        message=message,
        code=exc.status_code,
    )


def _database_busy_message(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).lower()
    if "locked" in text or "busy" in text:
        return "the database is busy with another write that has not finished; nothing was saved, try again in a moment"
    return "the database is unavailable right now; nothing was saved, try again in a moment"


STATEMENT_LIMITS = (
    "number of parameters must be between",  # PostgreSQL (psycopg): at most 65,535 bind parameters
    "too many sql variables",  # SQLite: SQLITE_MAX_VARIABLE_NUMBER
    "like or glob pattern too complex",  # SQLite: SQLITE_MAX_LIKE_PATTERN_LENGTH
    "string or blob too big",  # SQLite: SQLITE_MAX_LENGTH
    "statement too long",
    "expression tree is too large",
)
"""Errors of a statement the database can never run, whatever the load: the request is too large, not the database
down. Requests are checked against these limits first; this is the backstop."""


def _exceeds_a_limit(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return any(limit in text for limit in STATEMENT_LIMITS)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """SQLite busy past its timeout, PostgreSQL unreachable or the pool exhausted: 503, never a plain-text 500.

    A statement over one of the database's own limits is no outage: retrying cannot help, so it answers 422."""
    if _exceeds_a_limit(exc):
        log.warning("422 on %s %s: a database limit (%s)", request.method, request.url.path, exc.__class__.__name__)
        message = "the request is too large for the database to run (too many ids or too long a text); send less"
        return await _domain_error(request, InvalidInput(message))
    message = _database_busy_message(exc)
    log.warning("503 on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=503, headers=headers)
    page = render(request, "error.html", user=_user_of(request), status_code=503, message=message, code=503)
    page.headers.update(headers)
    return page


async def _unstorable_value(request: Request, exc: Exception) -> Response:
    """A value the database refused as out of range or malformed (a backstop; requests are checked first): 422."""
    log.warning("422 on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    message = "a value in the request is out of range or cannot be stored; nothing was saved"
    return await _domain_error(request, InvalidInput(message))


def _request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "unknown")


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Any other exception: logged with the request id, answered with a sentence quoting it (never plain text)."""
    request_id = _request_id_of(request)
    log.error(
        "unhandled %s on %s %s",
        exc.__class__.__name__,
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"request_id": request_id},
    )
    message = f"something went wrong on our side and nothing was saved; quote request id {request_id} when reporting it"
    # This answer comes from outside every middleware, so it adds what they would have.
    headers = {
        REQUEST_ID_HEADER: request_id,
        **security_headers(path=request.url.path, https=request.url.scheme == "https"),
    }
    if _wants_json(request):
        return JSONResponse({"detail": message, "request_id": request_id}, status_code=500, headers=headers)
    try:
        page = render(request, "error.html", user=_user_of(request), status_code=500, message=message, code=500)
    except Exception:  # noqa: BLE001 - the error page itself failed; the sentence still goes out
        return JSONResponse({"detail": message, "request_id": request_id}, status_code=500, headers=headers)
    page.headers.update(headers)
    return page


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the web application."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    if settings.uses_development_key and settings.env != "test":
        log.warning(DEV_KEY_LOG_WARNING)
    app = FastAPI(title="ranklab", version="0.1.0", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.settings = settings
    app.state.signer = Signer(settings.secret_key.get_secret_value())
    app.add_middleware(SessionMiddleware, signer=app.state.signer, settings=settings)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(AccessLogMiddleware)
    app.state.monitor = Monitor()
    app.add_middleware(MetricsMiddleware, monitor=app.state.monitor)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(OverflowError, _unstorable_value)
    app.add_exception_handler(Exception, _unexpected)
    from app.config import ROOT_DIR

    app.mount("/static", StaticFiles(directory=str(ROOT_DIR / "app" / "static")), name="static")
    for module in ROUTERS:
        app.include_router(module.router)
    openapi.install(app)
    return app


app = create_app()
