"""Accounts and their trail: users, login attempts (rate limiting), the audit log, versioned guidelines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.enums import Role, UserStatus
from app.models.base import Base, enum_column, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(enum_column(Role))
    status: Mapped[UserStatus] = mapped_column(enum_column(UserStatus), default=UserStatus.active)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    screening_agreement: Mapped[float | None] = mapped_column(Float)
    screening_flag_agreement: Mapped[float | None] = mapped_column(Float)
    screening_completed_at: Mapped[datetime | None]
    gold_alert: Mapped[bool] = mapped_column(Boolean, default=False)
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped to sign the user out everywhere: cookies and tokens carry the epoch they were issued in."""


class LoginAttempt(Base):
    """Failed and successful logins, for rate limiting (shared across web workers)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64), index=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Guideline(Base):
    """A versioned markdown page of labeling instructions."""

    __tablename__ = "guidelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
