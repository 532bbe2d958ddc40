"""The declarative base every table module shares: one MetaData with a naming convention, UTC timestamps, enum columns
stored as strings, and the data model's constants (flags, K range, rating range)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

FLAGS = (
    "fails_instruction",
    "inappropriate_for_assistant",
    "hallucination",
    "satisfies_constraint",
    "sexual_content",
    "violent_content",
    "encourages_harm",
    "denigrates_protected_class",
    "harmful_advice",
    "expresses_opinion",
    "moral_judgment",
)
"""Per-completion content flags from InstructGPT's labeling interface."""

MIN_K, MAX_K = 4, 9
MAX_OVERLAP = 100
"""Most labelers one task may ask for (also what a 32-bit column holds comfortably)."""
MAX_PRIORITY = 1_000_000
"""Task priorities lie within plus or minus this (the column is 32-bit on PostgreSQL)."""
MIN_RATING, MAX_RATING = 1, 7


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops tzinfo on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


def enum_column(cls: type[enum.Enum], *, constraint: bool = True) -> SAEnum:
    """A string column holding ``cls``'s values; with a CHECK constraint unless ``constraint`` is False (job kinds:
    adding a kind is a code change, not a migration, so the database does not list them)."""
    return SAEnum(
        cls,
        name=cls.__name__.lower(),
        native_enum=False,
        create_constraint=constraint,
        length=20,
        values_callable=lambda e: [m.value for m in e],
    )
