"""The base of every job's params, and the ranking filters the export and the training jobs share."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.orm import Session

from app.models import FLAGS


class JobParams(BaseModel):
    """Base of every job's params: unknown keys are refused so a typo is a 422, not a silent default."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def check_references(self, session: Session) -> None:
        """InvalidInput when the params point at rows that do not exist (override per kind; default: nothing)."""


class RankingFilter(JobParams):
    """Which rankings to use: the comparison export's filters, applied by the same code (`app.services.exports`)."""

    active_only: bool = False
    """Only rankings by labelers whose account is active (researchers' rankings are always kept)."""
    min_agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    """Only labelers whose agreement with researchers is at least this (researchers are always kept)."""
    exclude_flags: list[str] = Field(default_factory=list)
    """Leave out outputs that the ranking flagged with any of these flags."""
    model_versions: list[int] | None = Field(default=None, min_length=1, max_length=1000)
    """Only tasks whose outputs these model versions wrote (ids); default: every task."""
    since: datetime | None = None
    """Only rankings submitted at or after this time (ISO 8601; UTC when no zone is given)."""
    until: datetime | None = None
    """Only rankings submitted before this time (ISO 8601; UTC when no zone is given)."""

    @field_validator("exclude_flags")
    @classmethod
    def _known_flags(cls, flags: list[str]) -> list[str]:
        unknown = sorted(set(flags) - set(FLAGS))
        if unknown:
            raise ValueError(f"unknown flags {unknown}; allowed: {', '.join(FLAGS)}")
        return flags

    @model_validator(mode="after")
    def _ordered_dates(self) -> RankingFilter:
        if self.since is not None and self.until is not None:
            since, until = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (self.since, self.until))
            if since >= until:
                raise ValueError("since must be before until")
        return self
