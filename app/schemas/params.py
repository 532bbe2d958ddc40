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


class LoraParams(BaseModel):
    """Train low-rank adapters (LoRA) instead of every weight: the base stays frozen, each targeted projection W
    learns W + (alpha / r) * B A; the registered version has the adapters merged (a plain Hugging Face folder), the
    adapter itself saved beside it in `adapter/`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    r: int = Field(default=16, ge=1, le=1024)
    """Rank of each adapter (A is r x in, B is out x r)."""
    alpha: int = Field(default=32, ge=1, le=65_536)
    """Scale numerator: the adapter's update is multiplied by alpha / r."""
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Dropout on the adapter's input while training."""
    target_modules: list[str] | None = Field(default=None, min_length=1, max_length=64)
    """Names of the linear layers that get adapters (e.g. ["q_proj", "v_proj"]); default: every attention and MLP
    projection of the model."""

    @field_validator("target_modules")
    @classmethod
    def _named(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and any(not n.strip() for n in names):
            raise ValueError("target_modules: every name must be a non-empty module name such as q_proj")
        return names


MAX_MEMORY_GB_HELP = """Memory the job may use, in GB (10^9 bytes): the largest micro-batch whose estimate fits is
chosen (with activation checkpointing when needed), and the job fails at once when even one example does not fit;
default: the memory available when it starts (free GPU memory on CUDA, available RAM on CPU)."""


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
