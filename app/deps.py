"""Annotated dependency aliases so route signatures read like sentences.

Dependencies that do no I/O are `async def`: FastAPI runs every sync dependency in a worker thread, and those
hops are a measurable share of a labeling request (see docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db import SessionOpener, get_sessionmaker
from app.errors import Forbidden, NotAuthenticated
from app.models import Role, User, UserStatus
from app.security import CSRF_FIELD, CSRF_HEADER, SessionData, csrf_matches


async def sessionmaker_dep() -> sessionmaker[Session]:
    """The session factory requests use (tests point it at their own database)."""
    return get_sessionmaker()


Sessions = Annotated[sessionmaker[Session], Depends(sessionmaker_dep)]


async def session_opener(sessions: Sessions) -> SessionOpener:
    """For work that outlives the request's own session, such as a streamed response: each block is its own
    short transaction, so nothing is held open while the response waits on a slow (or vanished) client."""
    return sessions.begin


async def get_session(sessions: Sessions) -> AsyncIterator[Session]:
    """Request-scoped session: commits on success, rolls back on error.

    Async so that FastAPI does not spend a worker-thread hop on opening it (a Session does no I/O until first
    used); the end of the request (commit or rollback, then close) is one hop to a worker thread.
    """
    session = sessions()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled request still returns its connection
            await anyio.to_thread.run_sync(_finish, session, False)
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_finish, session, True)


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def settings_dep() -> Settings:
    """The process settings (async: FastAPI runs sync dependencies in a worker thread, a hop this needs not)."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]
# scope="function": commit before the response is sent, so a client never acts on a response whose writes
# could still fail (FastAPI otherwise runs yield-dependency exit code after sending the response).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
# A streamed body runs after the request's session is closed: it opens its own short transactions with this.
SessionsDep = Annotated[SessionOpener, Depends(session_opener)]

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_BLOCKED = (UserStatus.suspended, UserStatus.rejected)


async def browser_session(request: Request) -> SessionData:
    """The signed cookie session (set up by the session middleware)."""
    return request.state.session  # type: ignore[no-any-return]


BrowserSession = Annotated[SessionData, Depends(browser_session)]


async def _check_csrf(request: Request, browser: SessionData) -> None:
    if request.method in SAFE_METHODS or _bearer(request):
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not csrf_matches(browser.csrf, given):
        raise Forbidden("the form has expired or did not come from this site (CSRF check failed); reload the page")


async def verify_csrf(request: Request, browser: BrowserSession) -> None:
    """Reject a state-changing cookie-authenticated request without the session's CSRF token."""
    await _check_csrf(request, browser)


CsrfProtected = Depends(verify_csrf)


def bearer_token(request: Request) -> str | None:
    """The bearer token of the Authorization header, if any."""
    return _bearer(request)


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def optional_user(request: Request, session: SessionDep, settings: SettingsDep) -> User | None:
    """The caller from a bearer token or the session cookie, or None."""
    token = _bearer(request)
    if token is not None:
        claims = request.app.state.signer.read_token(token, settings.token_ttl_s)
        if claims is None:
            raise NotAuthenticated("the API token is invalid or expired; get a new one from /api/v1/auth/token")
        uid, epoch = claims
    else:
        uid, epoch = request.state.session.user_id, request.state.session.epoch
    if uid is None:
        return None
    user = session.get(User, uid)
    if user is None or user.status in _BLOCKED:
        return None
    if user.auth_epoch != epoch:  # signed out everywhere since (logout, password, role or status change)
        if token is not None:
            raise NotAuthenticated("the API token was revoked; get a new one from /api/v1/auth/token")
        return None
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]


@dataclass(frozen=True)
class UserCard:
    """What a page's header shows of the logged-in user."""

    id: int
    username: str
    role: Role
    status: UserStatus


async def current_user(request: Request, user: OptionalUser, browser: BrowserSession) -> User:
    """The logged-in user (401 when nobody is logged in; then 403 without the CSRF token on writes)."""
    if user is None:
        raise NotAuthenticated("log in first")
    # an error page for this request still shows the user's menu and log-out link (a copy: the ORM row is expired
    # by the rollback that precedes the error page)
    request.state.user = UserCard(id=user.id, username=user.username, role=user.role, status=user.status)
    await _check_csrf(request, browser)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def may_rank(user: User | UserCard) -> bool:
    """Labelers in screening or active, and researchers (who rank gold tasks)."""
    return user.role != Role.labeler or user.status in (UserStatus.screening, UserStatus.active)


async def current_labeler(user: CurrentUser) -> User:
    """Anyone who may rank: labelers in screening or active, and researchers (who rank gold tasks)."""
    if not may_rank(user):
        raise Forbidden(f"your account is {user.status.value.replace('_', ' ')}; a researcher will get back to you")
    return user


async def current_researcher(user: CurrentUser) -> User:
    """Researchers and admins."""
    if user.role not in (Role.researcher, Role.admin):
        raise Forbidden("this page is for researchers")
    return user


async def current_admin(user: CurrentUser) -> User:
    """Admins only."""
    if user.role != Role.admin:
        raise Forbidden("this action is for admins")
    return user


CurrentLabeler = Annotated[User, Depends(current_labeler)]
CurrentResearcher = Annotated[User, Depends(current_researcher)]
CurrentAdmin = Annotated[User, Depends(current_admin)]
