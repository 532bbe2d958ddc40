"""Browser login/logout and the OAuth2 password flow for API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import (
    BrowserSession,
    CsrfProtected,
    CurrentUser,
    OptionalUser,
    SessionDep,
    SessionsDep,
    SettingsDep,
    may_rank,
)
from app.errors import InvalidInput, NotAuthenticated, RateLimited
from app.models import Role, User
from app.schemas import PasswordChange, TokenRead
from app.security import SessionData, insecure_cookie_warning
from app.services import users as user_service
from app.web import render

router = APIRouter()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse, name="login_page")
def login_page(request: Request, user: OptionalUser, settings: SettingsDep, next: str = "/") -> Response:
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    warning = insecure_cookie_warning(
        cookie_secure=settings.cookie_secure, scheme=request.url.scheme, host=request.url.hostname
    )
    return render(request, "login.html", next=_safe_next(next), error=None, warning=warning, username="")


@router.post("/login", response_class=HTMLResponse, name="login", dependencies=[CsrfProtected])
def login(
    request: Request,
    session: SessionDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    browser: BrowserSession,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    try:
        user = user_service.authenticate(
            session,
            username=username,
            password=password,
            client=_client(request),
            max_failures=settings.login_max_failures,
            window_s=settings.login_window_s,
            sessions=sessions,
        )
    except NotAuthenticated as exc:
        return render(
            request, "login.html", next=_safe_next(next), error=exc.message, username=username, status_code=401
        )
    except RateLimited as exc:
        page = render(
            request, "login.html", next=_safe_next(next), error=exc.message, username=username, status_code=429
        )
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    _log_in(browser, user)
    return RedirectResponse(_landing(request, user, _safe_next(next)), status_code=303)


def _landing(request: Request, user: User, target: str) -> str:
    """Where a login lands: the page asked for, except that a labeler who may rank goes straight to ranking."""
    if target == "/" and user.role == Role.labeler and may_rank(user):
        return str(request.app.url_path_for("labeling_page"))
    return target


def _log_in(browser: SessionData, user: User) -> None:
    fresh = SessionData(user_id=user.id, epoch=user.auth_epoch)  # new CSRF token on login (no session fixation)
    browser.csrf, browser.user_id, browser.epoch = fresh.csrf, fresh.user_id, fresh.epoch


@router.post("/logout", name="logout", dependencies=[CsrfProtected])
def logout(session: SessionDep, browser: BrowserSession, user: OptionalUser) -> RedirectResponse:
    """Log out, and sign out everywhere: a copy of the old cookie, or a token, no longer works."""
    if user is not None:
        user_service.sign_out_everywhere(session, user=user)
    fresh = SessionData()
    browser.csrf, browser.user_id, browser.epoch = fresh.csrf, None, 0
    return RedirectResponse("/login", status_code=303)


@router.get("/account/password", response_class=HTMLResponse, name="password_page")
def password_page(request: Request, user: CurrentUser) -> Response:
    return render(request, "password.html", user=user, error=None, message=None)


@router.post("/account/password", response_class=HTMLResponse, name="change_password")
def change_password(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    browser: BrowserSession,
    current_password: Annotated[str, Form()],
    new_password: Annotated[str, Form()],
) -> Response:
    try:
        user_service.change_own_password(
            session, user=user, current_password=current_password, new_password=new_password
        )
    except InvalidInput as exc:
        return render(request, "password.html", user=user, error=exc.message, message=None, status_code=422)
    _log_in(browser, user)  # this browser stays logged in; every other session and token is revoked
    message = "Your password is changed; every other session and API token is signed out."
    return render(request, "password.html", user=user, error=None, message=message)


@router.post("/api/v1/auth/password", response_model=TokenRead, tags=["auth"], name="api_change_password")
def api_change_password(
    request: Request, body: PasswordChange, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> TokenRead:
    """Change your own password; every earlier token and session is revoked, so a fresh token comes back."""
    user_service.change_own_password(
        session, user=user, current_password=body.current_password, new_password=body.new_password
    )
    if request.state.session.user_id == user.id:
        _log_in(request.state.session, user)
    return _token(request, user, settings)


class PasswordForm:
    """The OAuth2 password flow's form, as `OAuth2PasswordRequestForm` reads it, but saying in the schema that a
    username and a password are required and not empty (an empty form field counts as missing)."""

    def __init__(
        self,
        username: Annotated[str, Form(min_length=1, max_length=1024)],
        password: Annotated[str, Form(min_length=1, max_length=1024, json_schema_extra={"format": "password"})],
        grant_type: Annotated[str, Form(pattern="^password$")] = "password",
        scope: Annotated[str, Form()] = "",
    ) -> None:
        self.username, self.password, self.grant_type, self.scopes = username, password, grant_type, scope.split()


def _token(request: Request, user: User, settings: SettingsDep) -> TokenRead:
    token = request.app.state.signer.issue_token(user.id, user.auth_epoch)
    return TokenRead(access_token=token, expires_in=settings.token_ttl_s)


@router.post("/api/v1/auth/token", response_model=TokenRead, tags=["auth"], name="issue_token")
def issue_token(
    request: Request,
    session: SessionDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    form: Annotated[PasswordForm, Depends()],
) -> Response | TokenRead:
    try:
        user = user_service.authenticate(
            session,
            username=form.username,
            password=form.password,
            client=_client(request),
            max_failures=settings.login_max_failures,
            window_s=settings.login_window_s,
            sessions=sessions,
        )
    except NotAuthenticated as exc:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": exc.message}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return _token(request, user, settings)
