"""Demonstrations: a labeler's written assistant answer to a conversation (step 1 of the method), and its review."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.enums import DemonstrationOrigin, DemonstrationStatus
from app.models.base import Base, enum_column, utcnow


class Demonstration(Base):
    """One labeler's answer to one demonstration assignment; only accepted ones train (`train_sft`)."""

    __tablename__ = "demonstrations"
    __table_args__ = (
        UniqueConstraint("labeler_id", "idempotency_key"),
        Index("ix_demonstrations_status_id", "status", "id"),
        Index("ix_demonstrations_labeler", "labeler_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), unique=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("ranking_tasks.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    content: Mapped[str] = mapped_column(Text)
    """The assistant's answer (markdown), as it trains: a reviewer's edit replaces it (the original stays below)."""
    origin: Mapped[DemonstrationOrigin] = mapped_column(enum_column(DemonstrationOrigin))
    source_completion_id: Mapped[int | None] = mapped_column(ForeignKey("completions.id"))
    """The sampled output a rewritten demonstration started from."""
    status: Mapped[DemonstrationStatus] = mapped_column(
        enum_column(DemonstrationStatus), default=DemonstrationStatus.submitted
    )
    original_content: Mapped[str | None] = mapped_column(Text)
    """What the labeler wrote, when a reviewer edited it."""
    review_reason: Mapped[str] = mapped_column(Text, default="")
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    time_spent_ms: Mapped[int | None]
    guideline_version: Mapped[int | None]
    idempotency_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None]
