"""The audit log: who did what to whom, and why."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy.orm import Session

from app.models import AuditLog, User


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    target: User | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> AuditLog:
    """Add one audit-log entry (enum values stored as their plain value)."""
    if target is not None and target.id is None:
        session.flush()
    entry = AuditLog(
        actor_id=actor.id if actor else None,
        action=action,
        target_user_id=target.id if target else None,
        reason=reason,
        data={k: v.value if isinstance(v, enum.Enum) else v for k, v in (data or {}).items()},
    )
    session.add(entry)
    return entry
