"""Password hashing, signed session cookies, CSRF tokens and bearer API tokens."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "ranklab_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


@lru_cache
def dummy_hash() -> str:
    """A hash of a random password: checking it keeps failed logins for unknown users as slow as real ones."""
    return hash_password(secrets.token_urlsafe(16))


@dataclass
class SessionData:
    """What the signed session cookie carries."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user_id: int | None = None
    epoch: int = 0
    """The user's `auth_epoch` when they logged in; a later sign-out everywhere makes the cookie worthless."""
    flash: str = ""
    """What the last form post did, said once by the page it redirected to (post/redirect/get)."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"csrf": self.csrf, "uid": self.user_id, "ep": self.epoch}
        if self.flash:
            data["fl"] = self.flash
        return data


class Signer:
    """Signs and checks session cookies and API tokens with the secret key."""

    def __init__(self, secret_key: str) -> None:
        self._session = URLSafeTimedSerializer(secret_key, salt="ranklab.session")
        self._token = URLSafeTimedSerializer(secret_key, salt="ranklab.api-token")

    def dump_session(self, data: SessionData) -> str:
        return self._session.dumps(data.to_dict())

    def load_session(self, cookie: str | None, max_age_s: int) -> SessionData | None:
        if not cookie:
            return None
        try:
            raw = self._session.loads(cookie, max_age=max_age_s)
        except BadSignature:
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("csrf"), str):
            return None
        uid, epoch, flash = raw.get("uid"), raw.get("ep"), raw.get("fl")
        return SessionData(
            csrf=raw["csrf"],
            user_id=uid if isinstance(uid, int) else None,
            epoch=epoch if isinstance(epoch, int) else 0,
            flash=flash if isinstance(flash, str) else "",
        )

    def issue_token(self, user_id: int, epoch: int) -> str:
        return self._token.dumps({"uid": user_id, "ep": epoch, "n": secrets.token_hex(4)})

    def read_token(self, token: str, max_age_s: int) -> tuple[int, int] | None:
        """(user id, auth epoch) of a valid, unexpired token, or None."""
        try:
            raw = self._token.loads(token, max_age=max_age_s)
        except BadSignature:
            return None
        uid = raw.get("uid") if isinstance(raw, dict) else None
        epoch = raw.get("ep", 0) if isinstance(raw, dict) else None
        return (uid, epoch) if isinstance(uid, int) and isinstance(epoch, int) else None


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of CSRF tokens."""
    return bool(given) and hmac.compare_digest(expected, given or "")


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
INSECURE_COOKIE_WARNING = (
    "This server sends its login cookie over HTTPS only (RANKLAB_COOKIE_SECURE=true), but this page came over plain "
    "HTTP, so your browser will drop it and logging in will not stick. Open the site through https://, or set "
    "RANKLAB_COOKIE_SECURE=false for a trial without TLS."
)


def insecure_cookie_warning(*, cookie_secure: bool | None, scheme: str, host: str | None) -> str | None:
    """Why logging in cannot work here (a Secure cookie over plain HTTP to a non-local host), or None."""
    if cookie_secure and scheme == "http" and (host or "").lower() not in LOCAL_HOSTS:
        return INSECURE_COOKIE_WARNING
    return None
