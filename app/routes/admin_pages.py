"""HTML: the admins' users page (create an account, reset a password, change a role, sign someone out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import CurrentAdmin, SessionDep
from app.errors import DomainError
from app.models import Role, User
from app.services import users as user_service
from app.web import redirect_after_post, render

router = APIRouter(prefix="/admin", tags=["admin pages"])


def users_view(session: SessionDep, request: Request, admin: User) -> dict[str, object]:
    """Every account with the forms an admin can use on it."""
    rows = []
    for u in user_service.list_users(session):
        rows.append(
            {
                "id": u.id,
                "username": u.username,
                "role": u.role.value,
                "status": u.status.value.replace("_", " "),
                "last_login": f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never",
                "is_me": u.id == admin.id,
                "role_url": request.app.url_path_for("admin_change_role", user_id=str(u.id)),
                "password_url": request.app.url_path_for("admin_reset_password", user_id=str(u.id)),
                "sign_out_url": request.app.url_path_for("admin_sign_out", user_id=str(u.id)),
            }
        )
    return {"rows": rows, "roles": [r.value for r in Role], "create_url": request.app.url_path_for("admin_create_user")}


def _page(request: Request, session: SessionDep, admin: User, error: str = "", confirm: object = None) -> Response:
    view = {**users_view(session, request, admin), "error": error, "confirm": confirm}
    return render(request, "admin/users.html", user=admin, view=view, status_code=422 if error else 200)


@router.get("/users", response_class=HTMLResponse, name="admin_users_page")
def users_page(request: Request, session: SessionDep, admin: CurrentAdmin) -> Response:
    return _page(request, session, admin)


def _act(
    request: Request,
    session: SessionDep,
    admin: User,
    action: Callable[[], object],
    done: str,
    row: int | Callable[[], int | None] | None = None,
) -> Response:
    """Run one admin action in a savepoint; on success back to the users page (at the row), which says what happened
    once (a reload repeats nothing); on refusal the page again with the reason."""
    try:
        with session.begin_nested():
            action()
    except DomainError as exc:
        return _page(request, session, admin, error=exc.message)
    at = row() if callable(row) else row
    url = str(request.app.url_path_for("admin_users_page")) + (f"#user-{at}" if at is not None else "")
    return redirect_after_post(request, url, message=done)


@router.post("/users", response_class=HTMLResponse, name="admin_create_user")
def create_user(
    request: Request,
    session: SessionDep,
    admin: CurrentAdmin,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    role: Annotated[Role, Form()],
) -> Response:
    made: list[User] = []

    def action() -> None:
        made.append(user_service.create_user(session, username=username, password=password, role=role, actor=admin))

    done = f"Created {username} ({role.value})."
    return _act(request, session, admin, action, done, row=lambda: made[0].id if made else None)


@router.post("/users/{user_id}/role", response_class=HTMLResponse, name="admin_change_role")
def change_role(
    user_id: int,
    request: Request,
    session: SessionDep,
    admin: CurrentAdmin,
    role: Annotated[Role, Form()],
    confirm: Annotated[str, Form()] = "",
) -> Response:
    target = user_service.get_user(session, user_id=user_id)
    if target.id == admin.id and role != Role.admin and confirm != "yes":  # ask before an admin demotes themselves
        confirm_view = {"role": role.value, "url": request.app.url_path_for("admin_change_role", user_id=str(user_id))}
        return _page(request, session, admin, confirm=confirm_view)

    def action() -> None:
        user_service.change_role(session, user=target, role=role, actor=admin)

    return _act(request, session, admin, action, f"{target.username} is now {role.value}.", row=target.id)


@router.post("/users/{user_id}/password", response_class=HTMLResponse, name="admin_reset_password")
def reset_password(
    user_id: int, request: Request, session: SessionDep, admin: CurrentAdmin, password: Annotated[str, Form()]
) -> Response:
    target = user_service.get_user(session, user_id=user_id)

    def action() -> None:
        user_service.set_password(session, user=target, password=password, actor=admin)

    return _act(request, session, admin, action, f"New password set for {target.username}.", row=target.id)


@router.post("/users/{user_id}/sign-out", response_class=HTMLResponse, name="admin_sign_out")
def sign_out(user_id: int, request: Request, session: SessionDep, admin: CurrentAdmin) -> Response:
    target = user_service.get_user(session, user_id=user_id)

    def action() -> None:
        user_service.sign_out_everywhere(session, user=target, actor=admin)

    return _act(request, session, admin, action, f"{target.username} is signed out everywhere.", row=target.id)
