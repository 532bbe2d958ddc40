"""The demonstration part of a new labeler's screening set: how many they must write, and how the reviews went.

Read by the screening gate (app.services.screening) and by the assignment pipeline (which screening task types a
labeler in screening still needs). Queries only: no decisions here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Demonstration, DemonstrationStatus, RankingTask, TaskKind, TaskStatus, TaskType, User


@dataclass(frozen=True)
class DemonstrationScreening:
    """A screening labeler's demonstrations: written, required, and their review outcomes."""

    required: int
    written: int
    accepted: int
    rejected: int

    @property
    def to_write(self) -> int:
        """How many more screening demonstrations they must write."""
        return max(0, self.required - self.written)

    @property
    def awaiting_review(self) -> int:
        """Written, not yet reviewed (of the required ones)."""
        return max(0, min(self.written, self.required) - self.accepted - self.rejected)


def demonstration_screening(session: Session, *, settings: Settings, user: User) -> DemonstrationScreening:
    """The demonstration side of ``user``'s screening: required = the setting, capped by the screening demonstration
    tasks researchers have created (a setting with no tasks behind it does not block anybody)."""
    if settings.screening_demonstrations == 0:
        return DemonstrationScreening(0, 0, 0, 0)
    available = (
        session.scalar(
            select(func.count())
            .select_from(RankingTask)
            .where(
                RankingTask.kind == TaskKind.screening,
                RankingTask.task_type == TaskType.demonstration,
                RankingTask.status != TaskStatus.archived,
            )
        )
        or 0
    )
    rows = session.execute(
        select(Demonstration.status, func.count())
        .join(RankingTask, RankingTask.id == Demonstration.task_id)
        .where(Demonstration.labeler_id == user.id, RankingTask.kind == TaskKind.screening)
        .group_by(Demonstration.status)
    ).all()
    by_status = {status: n for status, n in rows}
    return DemonstrationScreening(
        required=min(settings.screening_demonstrations, available),
        written=sum(by_status.values()),
        accepted=by_status.get(DemonstrationStatus.accepted, 0),
        rejected=by_status.get(DemonstrationStatus.rejected, 0),
    )
