"""The base of every job's params, and the ranking filters the export and the training jobs share."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.errors import InvalidInput
from app.models import FLAGS, ModelVersion
from app.schemas.fields import Id, UtcMoment


class JobParams(BaseModel):
    """Base of every job's params: unknown keys are refused so a typo is a 422, not a silent default."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        """The params parsed as the JSON they are: strictly, so `true` is no id, `0` no boolean and a number no
        date (ValidationError otherwise). Python values a caller put in (an enum, a datetime) count as their JSON."""
        return cls.model_validate_json(json.dumps(params, default=_as_json), strict=True)

    def check_references(self, session: Session) -> None:
        """InvalidInput when the params point at rows that do not exist (override per kind; default: nothing)."""


ID_CHUNK = 10_000
"""Ids per `IN (...)` list: PostgreSQL takes at most 65,535 parameters per statement, and a long list is legitimate."""


def existing_ids(session: Session, column: InstrumentedAttribute[int], ids: Iterable[int]) -> set[int]:
    """Which of `ids` exist in `column`, looked up in chunks so that any number of ids works on every database."""
    wanted, found = sorted(set(ids)), set[int]()
    for start in range(0, len(wanted), ID_CHUNK):
        found.update(session.scalars(select(column).where(column.in_(wanted[start : start + ID_CHUNK]))))
    return found


def check_files_kept(model: ModelVersion, name: str) -> None:
    """InvalidInput when `ranklab storage --apply` removed the files of the version a param names."""
    if model.files_removed_at is not None:
        raise InvalidInput(
            f"params.{name}: the files of model version {model.id} were removed at {model.files_removed_at} "
            "(ranklab storage --apply); register the model again with `ranklab models add`"
        )


def _as_json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


class RankingFilter(JobParams):
    """Which rankings to use: the comparison export's filters, applied by the same code (`app.services.exports`)."""

    active_only: bool = False
    """Only rankings by labelers whose account is active (researchers' rankings are always kept)."""
    min_agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    """Only labelers whose agreement with researchers is at least this (researchers are always kept)."""
    exclude_flags: list[str] = Field(default_factory=list)
    """Leave out outputs that the ranking flagged with any of these flags."""
    model_versions: list[Id] | None = Field(default=None, min_length=1, max_length=1000)
    """Only tasks whose outputs these model versions wrote (ids); default: every task."""
    since: UtcMoment | None = None
    """Only rankings submitted at or after this time (ISO 8601; UTC when no zone is given)."""
    until: UtcMoment | None = None
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
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self
