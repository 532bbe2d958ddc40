"""Field types for request bodies and query parameters that mean what the OpenAPI schema says.

Pydantic's default (lax) mode turns `true` into the id 1, `"5"` into 5, `0` into False and a number into a date;
a JSON client that sends those has made a mistake the schema already names, so these types refuse them. Ids are
held to the range of an INTEGER column on PostgreSQL, on SQLite too, so both databases answer alike and a query
can never fail on an id after a streamed response has started.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, StrictBool, TypeAdapter

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = TypeAdapter(datetime)
ID_MAX = 2**31 - 1
"""Largest row id: ids are 32-bit INTEGER columns on PostgreSQL."""


def _text_datetime(value: Any) -> Any:
    """A date-time is ISO 8601 text (a date alone is its midnight); a number (seconds since 1970?) is refused rather
    than guessed."""
    if isinstance(value, int | float):
        raise ValueError("must be a date-time as ISO 8601 text (e.g. 2026-01-31T12:00:00Z), not a number")
    if isinstance(value, str):  # parsed here: strict validation (JSON params) takes only a datetime afterwards
        text = value.strip()
        return _DATETIME.validate_python(text + "T00:00:00" if _DATE_ONLY.fullmatch(text) else text)
    return value


def _utc_representable(value: datetime) -> datetime:
    """The moment in UTC (a time without a zone is UTC); refused when UTC cannot hold it (year 1 or 9999 edges)."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is out of range once converted to UTC (years 1 to 9999)") from exc


Id = Annotated[int, Strict(), Field(ge=1, le=ID_MAX)]
"""A row id in a JSON body: a whole number from 1 to 2^31 - 1 (not true, 1.0 or "1")."""
QueryId = Annotated[int, Field(ge=1, le=ID_MAX)]
"""A row id in a query string or path (text by nature): a whole number from 1 to 2^31 - 1."""
Whole = Annotated[int, Strict()]
"""A whole number in a JSON body (not true, 2.0 or "2")."""
Flag = StrictBool
"""true or false in a JSON body (not 0, 1 or "yes")."""
UtcMoment = Annotated[datetime, BeforeValidator(_text_datetime), AfterValidator(_utc_representable)]
"""A date-time as ISO 8601 text (never a number; a date alone is its midnight) that UTC can hold; kept in UTC (a
time without a zone is UTC)."""
