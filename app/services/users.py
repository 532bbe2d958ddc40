"""Accounts: creation, authentication with failed-login rate limiting, status changes."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound, RateLimited
from app.models import LoginAttempt, Role, User, UserStatus, utcnow
from app.security import dummy_hash, hash_password, needs_rehash, verify_password
from app.services import audit
from app.services import tasks as task_service

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 256


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    status: UserStatus | None = None,
    actor: User | None = None,
) -> User:
    """Create an account; labelers start in screening unless a status is given."""
    if not USERNAME_RE.match(username):
        raise InvalidInput("username must be 3-64 characters: letters, digits, '_', '.', '@' or '-'")
    check_password(password)
    if status is None:
        status = UserStatus.screening if role == Role.labeler else UserStatus.active
    if session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        raise Conflict(f"a user named {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role, status=status)
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a user named {username!r} already exists") from exc
    audit.record(session, actor=actor, action="user.create", target=user, data={"role": role, "status": status})
    return user


def get_user(session: Session, *, user_id: int) -> User:
    """The user with this id, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def list_users(session: Session, *, role: Role | None = None) -> list[User]:
    """All users, optionally of one role, by username."""
    query = select(User).order_by(User.username)
    if role is not None:
        query = query.where(User.role == role)
    return list(session.scalars(query))


def set_status(session: Session, *, user: User, status: UserStatus, actor: User | None, reason: str = "") -> User:
    """Change a user's status, with an audit-log entry.

    Researchers may change labelers only (admins anyone); a rejection needs a reason; becoming active clears a
    hidden-gold alert, as an approval does.
    """
    if actor is not None and actor.role != Role.admin and user.role != Role.labeler:
        raise Forbidden("researchers may change the status of labelers only")
    if status == UserStatus.rejected and not reason.strip():
        raise InvalidInput("give a reason for rejecting a user; it is kept in the audit log")
    old = user.status
    change_status(session, user=user, status=status)
    if status == UserStatus.active:
        user.gold_alert = False
    audit.record(
        session,
        actor=actor,
        action="user.status",
        target=user,
        reason=reason.strip(),
        data={"from": old, "to": status},
    )
    return user


CAN_RANK = (UserStatus.screening, UserStatus.active)


def change_status(session: Session, *, user: User, status: UserStatus) -> None:
    """The one way a status changes: a change signs the user out everywhere, and a labeler who may no longer rank
    hands back the tasks they hold at once (instead of keeping the slots until their leases run out)."""
    if status == user.status:
        return
    # The screening gate's verdict (active, or pending review) keeps the login: it happens under the labeler's own
    # request, and a 403 saying "pending review" tells them more than a 401 would.
    if not (user.status == UserStatus.screening and status in (UserStatus.active, UserStatus.pending_review)):
        sign_out_everywhere(session, user=user)
    user.status = status
    if status not in CAN_RANK:
        task_service.release_held_assignments(session, labeler_id=user.id)


def change_role(session: Session, *, user: User, role: Role, actor: User | None) -> User:
    """Give a user another role (admins only); signs them out everywhere."""
    if actor is not None and actor.role != Role.admin:
        raise Forbidden("only admins may change roles")
    if role != user.role:
        old = user.role
        user.role = role
        sign_out_everywhere(session, user=user)
        audit.record(session, actor=actor, action="user.role", target=user, data={"from": old, "to": role})
    return user


def sign_out_everywhere(session: Session, *, user: User, actor: User | None = None) -> None:
    """Make every session cookie and API token issued to the user so far worthless."""
    user.auth_epoch = (user.auth_epoch or 0) + 1
    if actor is not None:
        audit.record(session, actor=actor, action="user.sign_out_everywhere", target=user)
    session.flush()


def check_password(password: str) -> str:
    """The password if it is long enough; InvalidInput otherwise."""
    if len(password) < MIN_PASSWORD_LEN:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LEN} characters")
    if len(password) > MAX_PASSWORD_LEN:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD_LEN} characters")
    return password


def set_password(session: Session, *, user: User, password: str, actor: User | None) -> User:
    """A new password (by the user, an admin or the command line); signs the user out everywhere."""
    user.password_hash = hash_password(check_password(password))
    sign_out_everywhere(session, user=user)
    audit.record(session, actor=actor, action="user.password", target=user)
    return user


def change_own_password(session: Session, *, user: User, current_password: str, new_password: str) -> User:
    """The user changes their password, proving the current one first."""
    if not verify_password(user.password_hash, current_password):
        raise InvalidInput("the current password is wrong")
    if new_password == current_password:
        raise InvalidInput("the new password is the same as the current one")
    return set_password(session, user=user, password=new_password, actor=user)


def authenticate(
    session: Session, *, username: str, password: str, client: str, max_failures: int, window_s: int
) -> User:
    """Check credentials; too many recent failures for the name from this client, or from this client over all
    names, raise RateLimited. Counting the name per client means a stranger's wrong guesses cannot lock the account
    for its owner; an address guessing many names is still stopped."""
    since = utcnow() - timedelta(seconds=window_s)
    failures = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.succeeded.is_(False), LoginAttempt.at >= since)
    )
    by_name = session.scalar(failures.where(LoginAttempt.username == username.lower(), LoginAttempt.client == client))
    by_name = by_name or 0
    by_client = session.scalar(failures.where(LoginAttempt.client == client)) or 0
    if by_name >= max_failures or by_client >= max_failures * 4:
        raise RateLimited("too many failed logins; try again in a few minutes", retry_after_s=window_s)
    user = session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    ok = verify_password(user.password_hash if user else dummy_hash(), password)
    session.add(LoginAttempt(username=username.lower()[:64], client=client[:64], succeeded=ok))
    if not ok or user is None:
        raise NotAuthenticated("wrong username or password")
    if user.status in (UserStatus.suspended, UserStatus.rejected):
        raise NotAuthenticated(f"this account is {user.status.value}; ask a researcher")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user
