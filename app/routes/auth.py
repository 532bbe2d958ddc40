"""Browser login/logout and the OAuth2 password flow for API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm

from app.deps import BrowserSession, CsrfProtected, OptionalUser, SessionDep, SettingsDep
from app.errors import NotAuthenticated, RateLimited
from app.schemas import TokenRead
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
    return render(request, "login.html", next=_safe_next(next), error=None, warning=warning)


@router.post("/login", response_class=HTMLResponse, name="login", dependencies=[CsrfProtected])
def login(
    request: Request,
    session: SessionDep,
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
        )
    except NotAuthenticated as exc:
        return render(request, "login.html", next=_safe_next(next), error=exc.message, status_code=401)
    except RateLimited as exc:
        page = render(request, "login.html", next=_safe_next(next), error=exc.message, status_code=429)
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    fresh = SessionData(user_id=user.id)  # new CSRF token on login (no session fixation)
    browser.csrf, browser.user_id = fresh.csrf, fresh.user_id
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", name="logout", dependencies=[CsrfProtected])
def logout(browser: BrowserSession) -> RedirectResponse:
    fresh = SessionData()
    browser.csrf, browser.user_id = fresh.csrf, None
    return RedirectResponse("/login", status_code=303)


@router.post("/api/v1/auth/token", response_model=TokenRead, tags=["auth"], name="issue_token")
def issue_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Response | TokenRead:
    try:
        user = user_service.authenticate(
            session,
            username=form.username,
            password=form.password,
            client=_client(request),
            max_failures=settings.login_max_failures,
            window_s=settings.login_window_s,
        )
    except NotAuthenticated as exc:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": exc.message}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return TokenRead(access_token=request.app.state.signer.issue_token(user.id), expires_in=settings.token_ttl_s)
