"""Account administration API."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.deps import CurrentAdmin, CurrentResearcher, SessionDep
from app.models import Role
from app.schemas import UserCreate, UserRead, UserUpdate
from app.services import users as user_service

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.post("", response_model=UserRead, status_code=201, name="create_user")
def create_user(body: UserCreate, session: SessionDep, admin: CurrentAdmin) -> UserRead:
    user = user_service.create_user(
        session, username=body.username, password=body.password, role=body.role, status=body.status, actor=admin
    )
    return UserRead.model_validate(user)


@router.get("", response_model=list[UserRead], name="list_users")
def list_users(session: SessionDep, _researcher: CurrentResearcher, role: Role | None = None) -> list[UserRead]:
    return [UserRead.model_validate(u) for u in user_service.list_users(session, role=role)]


@router.patch("/{user_id}", response_model=UserRead, name="update_user")
def update_user(user_id: int, body: UserUpdate, session: SessionDep, actor: CurrentResearcher) -> UserRead:
    user = user_service.get_user(session, user_id=user_id)
    user_service.set_status(session, user=user, status=body.status, actor=actor, reason=body.reason)
    return UserRead.model_validate(user)


@router.post("/{user_id}/sign-out", status_code=204, name="sign_out_user")
def sign_out_user(user_id: int, session: SessionDep, admin: CurrentAdmin) -> Response:
    """Sign a user out everywhere: every session cookie and API token issued to them stops working."""
    user = user_service.get_user(session, user_id=user_id)
    user_service.sign_out_everywhere(session, user=user, actor=admin)
    return Response(status_code=204)
