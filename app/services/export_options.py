"""What an export (or a training job reading rankings) keeps: the options, their validation, and where an export
job writes its file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from app.errors import InvalidInput
from app.models import FLAGS, Split
from app.schemas.fields import ID_MAX
from app.schemas.params import RankingFilter


@dataclass(frozen=True)
class ExportOptions:
    """What to export and which rankings to keep."""

    format: Literal["pairs", "rankings"] = "pairs"
    active_only: bool = False
    """Only rankings by labelers whose account is active (researchers' rankings are always kept)."""
    min_agreement: float | None = None
    """Only labelers whose agreement with researchers is at least this (researchers are always kept)."""
    split: Split | None = None
    exclude_flags: tuple[str, ...] = ()
    """Leave out outputs that the ranking flagged with any of these flags."""
    model_versions: tuple[int, ...] | None = None
    """Only tasks whose outputs these model versions wrote."""
    since: datetime | None = None
    """Only rankings submitted at or after this time."""
    until: datetime | None = None
    """Only rankings submitted before this time."""
    ranking_ids: frozenset[int] | None = None
    """Only these rankings (a resumed training job re-reads exactly the rankings its first attempt chose)."""


def check_options(options: ExportOptions) -> None:
    unknown = sorted(set(options.exclude_flags) - set(FLAGS))
    if unknown:
        raise InvalidInput(f"unknown flags {unknown}; allowed: {', '.join(FLAGS)}")
    if options.format not in ("pairs", "rankings"):
        raise InvalidInput("format must be 'pairs' or 'rankings'")
    for name in ("since", "until"):
        moment = getattr(options, name)
        if moment is not None:
            try:
                as_utc(moment).astimezone(UTC)
            except OverflowError as exc:
                raise InvalidInput(f"{name}: {moment.isoformat()} is out of range once converted to UTC") from exc
    if options.since is not None and options.until is not None and as_utc(options.since) >= as_utc(options.until):
        raise InvalidInput("since must be before until")
    bad = [i for i in options.model_versions or () if isinstance(i, bool) or not 1 <= i <= ID_MAX]
    if bad:
        raise InvalidInput(f"model_versions: {bad[0]} is not a model version id (ids run from 1 to {ID_MAX})")


def as_utc(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC (how every time is stored)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def options_from_params(params: RankingFilter) -> ExportOptions:
    """ExportOptions from an export or training job's parsed params (format and split where the kind has them)."""
    return ExportOptions(
        format="rankings" if getattr(params, "format", "pairs") == "rankings" else "pairs",
        active_only=params.active_only,
        min_agreement=params.min_agreement,
        split=getattr(params, "split", None),
        exclude_flags=tuple(params.exclude_flags),
        model_versions=tuple(params.model_versions) if params.model_versions else None,
        since=params.since,
        until=params.until,
    )


def job_file(data_dir: Path, *, job_id: int, fmt: str) -> Path:
    """Where the export job `job_id` writes its JSON lines."""
    return Path(data_dir) / "exports" / f"job-{job_id}-{fmt}.jsonl"
