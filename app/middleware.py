"""Pure-ASGI middleware: signed session cookie and structured access log."""

from __future__ import annotations

import logging
import re
import time
import uuid
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.security import SESSION_COOKIE, SessionData, Signer

access_log = logging.getLogger("ranklab.access")


class SessionMiddleware:
    """Loads the session cookie into `request.state.session` and writes it back when it changed."""

    def __init__(self, app: ASGIApp, *, signer: Signer, settings: Settings) -> None:
        self.app = app
        self.signer = signer
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = _read_cookie(scope, SESSION_COOKIE)
        loaded = self.signer.load_session(cookie, self.settings.session_max_age_s)
        session = loaded or SessionData()
        before = session.to_dict() if loaded else None
        scope.setdefault("state", {})["session"] = session
        has_bearer = any(k == b"authorization" and v[:7].lower() == b"bearer " for k, v in scope["headers"])

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and not has_bearer and session.to_dict() != before:
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", self._cookie(scope, session))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _cookie(self, scope: Scope, session: SessionData) -> str:
        secure = self.settings.cookie_secure
        if secure is None:
            secure = scope.get("scheme") == "https"
        parts = [
            f"{SESSION_COOKIE}={self.signer.dump_session(session)}",
            "Path=/",
            f"Max-Age={self.settings.session_max_age_s}",
            "HttpOnly",
            "SameSite=Lax",
        ]
        if secure:
            parts.append("Secure")
        return "; ".join(parts)


def _read_cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is just ignored
                return None
            if name in jar:
                return jar[name].value
    return None


REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a plain token (so a proxy's id carries through), else a new one."""
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            given = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.fullmatch(given):
                return given
    return uuid.uuid4().hex


class AccessLogMiddleware:
    """One structured log line per request: method, path (no query string), status, milliseconds, request id.

    The request id is in `scope["state"]["request_id"]` (so error handlers can quote it) and in the
    X-Request-ID response header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {"code": 500}
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status["code"],
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                    "request_id": request_id,
                },
            )


PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(*, path: str, https: bool) -> dict[str, str]:
    """The headers every response carries: no framing, no MIME sniffing, no referrer to other sites, a CSP
    that allows only this site's own scripts and styles, and HSTS when the request came over HTTPS."""
    headers = {
        "Content-Security-Policy": PAGE_CSP,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeadersMiddleware:
    """Adds `security_headers()` to every response (error pages and 500s included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(path=scope["path"], https=scope.get("scheme") == "https")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in extra.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_wrapper)
