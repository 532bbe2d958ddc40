"""Accounts: creation, authentication with failed-login rate limiting, status changes."""

from __future__ import annotations

import re
from contextlib import nullcontext
from datetime import timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import SessionOpener
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
    if status != UserStatus.active:
        keep_an_admin(session, user=user)
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
        if role != Role.admin:
            keep_an_admin(session, user=user)
        old = user.role
        user.role = role
        sign_out_everywhere(session, user=user)
        audit.record(session, actor=actor, action="user.role", target=user, data={"from": old, "to": role})
    return user


def keep_an_admin(session: Session, *, user: User) -> None:
    """Conflict when `user` is the last active admin: removing or suspending them would leave the install with no
    admin (only the command line could make one again)."""
    if user.role != Role.admin or user.status != UserStatus.active:
        return
    # the active admins' rows are locked, so two admins demoting each other at once cannot both succeed
    admins = session.scalars(
        select(User.id).where(User.role == Role.admin, User.status == UserStatus.active).with_for_update()
    ).all()
    if not set(admins) - {user.id}:
        raise Conflict(
            f"{user.username} is the last active admin; make another user admin first, or nobody could manage accounts"
        )


def sign_out_everywhere(session: Session, *, user: User, actor: User | None = None) -> None:
    """Make every session cookie and API token issued to the user so far worthless."""
    user.auth_epoch = (user.auth_epoch or 0) + 1
    if actor is not None:
        audit.record(session, actor=actor, action="user.sign_out_everywhere", target=user)
    session.flush()


def _count_attempt(session: Session, *, username: str, client: str, max_failures: int, window_s: int) -> int:
    """Lock the client, count its recent failures, refuse (RateLimited) or record this attempt as a failure; its id.

    PostgreSQL: a transaction-scoped advisory lock on the client address serialises the count and the insert
    between concurrent requests; SQLite: every transaction already holds the write lock (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": LOGIN_LOCK + client})
    since = utcnow() - timedelta(seconds=window_s)
    failures = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.succeeded.is_(False), LoginAttempt.at >= since)
    )
    name = username.lower().replace("\x00", "\ufffd")[:64]
    by_name = session.scalar(failures.where(LoginAttempt.username == name, LoginAttempt.client == client))
    by_client = session.scalar(failures.where(LoginAttempt.client == client)) or 0
    if (by_name or 0) >= max_failures or by_client >= max_failures * 4:
        raise RateLimited("too many failed logins; try again in a few minutes", retry_after_s=window_s)
    attempt = LoginAttempt(username=name, client=client[:64], succeeded=False)
    session.add(attempt)
    session.flush()
    return attempt.id


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


LOGIN_LOCK = "ranklab.login:"
"""Prefix of the PostgreSQL advisory lock key taken per client address while an attempt is counted."""


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    client: str,
    max_failures: int,
    window_s: int,
    sessions: SessionOpener | None = None,
) -> User:
    """Check credentials; too many recent failures for the name from this client, or from this client over all
    names, raise RateLimited. Counting the name per client means a stranger's wrong guesses cannot lock the account
    for its owner; an address guessing many names is still stopped.

    The attempt is counted and decided atomically and recorded as a failure before the (slow) password check, so
    parallel requests cannot all pass the count: `sessions` opens the short transaction that does it (committed at
    once, so the client's lock is not held during the check); without it, `session` does, holding the lock until
    its transaction ends. A right password then marks the attempt succeeded."""
    counter = sessions() if sessions is not None else nullcontext(session)
    with counter as s:
        attempt_id = _count_attempt(s, username=username, client=client, max_failures=max_failures, window_s=window_s)
    # a name no account can have (a NUL, which no column stores) is a wrong name, not a malformed request
    user = (
        None
        if "\x00" in username
        else session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    )
    ok = verify_password(user.password_hash if user else dummy_hash(), password)
    if ok:
        session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(succeeded=True))
    if not ok or user is None:
        raise NotAuthenticated("wrong username or password")
    if user.status in (UserStatus.suspended, UserStatus.rejected):
        raise NotAuthenticated(f"this account is {user.status.value}; ask a researcher")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user
