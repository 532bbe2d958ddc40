"""What uses the data folder's disk, what may go, and whether there is room to start a job.

Under RANKLAB_DATA_DIR live `models/` (registered versions, and folders of attempts that were never registered),
`checkpoints/` (per job: training state and the data a resumed attempt re-reads), `exports/` (export jobs' JSON
lines) and, on SQLite, the database. `storage_report` measures them and plans what can go:

* checkpoints of finished jobs (succeeded, failed or cancelled: nothing resumes from them) or of deleted jobs;
* model folders under `models/` that no version is registered at, left by an attempt of a finished job;
* export files beyond the retention (the newest RANKLAB_EXPORT_KEEP, none older than RANKLAB_EXPORT_MAX_AGE_DAYS);
* the files of registered versions beyond the newest RANKLAB_KEEP_MODEL_VERSIONS of each kind that no round,
  schedule or unfinished job uses (nor, as an ancestor or as the reward/SFT model it names, any version kept).
  The registry row stays, since completions and rankings point at it; it records when its files went.

Nothing outside the data folder is ever removed (a version registered in place stays whole), and nothing is removed
by `storage_report`: `apply_removals` does it and writes each removal to the audit log (`ranklab storage --apply`).
Export retention is also applied by the export job itself (`prune_exports`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Job, JobStatus, ModelVersion, Round, Schedule, User, utcnow
from app.services import audit

FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
GB = 1024**3
_JOB_ENTRY = re.compile(r"^job-(\d+)-")
_ATTEMPT_FOLDER = re.compile(r"-job(\d+)-a\d+$")
_EXPORT_FILE = re.compile(r"^job-(\d+)-[a-z]+\.jsonl$")


@dataclass(frozen=True)
class Removal:
    """One thing the plan would remove, with its size and why it may go."""

    what: str
    """checkpoint, model folder, model files or export."""
    path: Path
    bytes: int
    reason: str
    model_version_id: int | None = None


@dataclass(frozen=True)
class Usage:
    """Bytes and entries of one category of the data folder."""

    category: str
    bytes: int
    entries: int


@dataclass(frozen=True)
class StorageReport:
    data_dir: Path
    total_bytes: int
    """Everything under the data folder (the SQLite database included when it lives there)."""
    usage: list[Usage]
    database: str
    """Where the database lives and how big it is ('SQLite file ...' or 'PostgreSQL database ...')."""
    database_bytes: int
    free_bytes: int
    disk_bytes: int
    removals: list[Removal] = field(default_factory=list)

    @property
    def removable_bytes(self) -> int:
        return sum(r.bytes for r in self.removals)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def report_dict(report: StorageReport) -> dict[str, Any]:
    """The report as JSON-ready data (the API's and `ranklab storage --json`'s shape)."""
    return {
        "data_dir": str(report.data_dir),
        "total_bytes": report.total_bytes,
        "free_bytes": report.free_bytes,
        "disk_bytes": report.disk_bytes,
        "database": report.database,
        "database_bytes": report.database_bytes,
        "usage": [{"category": u.category, "bytes": u.bytes, "entries": u.entries} for u in report.usage],
        "removals": [
            {
                "what": r.what,
                "path": str(r.path),
                "bytes": r.bytes,
                "reason": r.reason,
                "model_version_id": r.model_version_id,
            }
            for r in report.removals
        ],
        "removable_bytes": report.removable_bytes,
    }


def folder_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links not followed)."""
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def disk_space(path: Path) -> tuple[int, int]:
    """(free, total) bytes of the disk that holds `path` (or its nearest existing parent)."""
    target = Path(path).resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    usage = shutil.disk_usage(target)
    return usage.free, usage.total


def low_disk_message(data_dir: Path, *, min_free_gb: float) -> str | None:
    """Why a job should not start for lack of disk (with the numbers), or None when there is room or no minimum."""
    if min_free_gb <= 0:
        return None
    free, total = disk_space(data_dir)
    if free >= min_free_gb * GB:
        return None
    return (
        f"only {free / GB:.2f} GB free of {total / GB:.1f} GB on the disk of {data_dir}, under the "
        f"{min_free_gb:g} GB minimum (RANKLAB_MIN_FREE_DISK_GB); free space (`ranklab storage --apply`) or lower it"
    )


def export_files(data_dir: Path) -> list[Path]:
    """Complete export files (not `.part`), newest first."""
    folder = Path(data_dir) / "exports"
    files = [p for p in folder.glob("job-*.jsonl") if _EXPORT_FILE.match(p.name)] if folder.is_dir() else []
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def exports_over_retention(data_dir: Path, *, keep: int, max_age_days: float, now: float | None = None) -> list[Path]:
    """Export files beyond the newest `keep`, or older than `max_age_days` (0: no age limit)."""
    now = time.time() if now is None else now
    files = export_files(data_dir)
    too_old = [p for p in files if max_age_days > 0 and now - p.stat().st_mtime > max_age_days * 86400]
    return [p for i, p in enumerate(files) if i >= keep or p in too_old]


def prune_exports(data_dir: Path, *, keep: int, max_age_days: float, now: float | None = None) -> list[Path]:
    """Delete the export files over the retention; returns them (a file already gone is skipped)."""
    removed = []
    for path in exports_over_retention(data_dir, keep=keep, max_age_days=max_age_days, now=now):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def _job_statuses(session: Session, ids: Iterable[int]) -> dict[int, JobStatus]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {job_id: status for job_id, status in session.execute(select(Job.id, Job.status).where(Job.id.in_(wanted)))}


def _finished_or_gone(job_id: int, statuses: dict[int, JobStatus]) -> str | None:
    status = statuses.get(job_id)
    if status is None:
        return f"job {job_id} no longer exists"
    return f"job {job_id} has {status.value}" if status in FINISHED else None


def _job_entries(folder: Path, pattern: re.Pattern[str]) -> list[tuple[Path, int]]:
    if not folder.is_dir():
        return []
    found = [(p, pattern.search(p.name)) for p in folder.iterdir() if not p.name.startswith(".")]
    return [(p, int(m.group(1))) for p, m in found if m is not None]


def _entries_of_finished_jobs(
    session: Session, folder: Path, pattern: re.Pattern[str], *, what: str, why: str, skip: set[Path]
) -> list[Removal]:
    """Entries of `folder` named after a job (by `pattern`) whose job has finished or is gone, as removals."""
    entries = [(p, job_id) for p, job_id in _job_entries(folder, pattern) if p.resolve() not in skip]
    statuses = _job_statuses(session, (job_id for _, job_id in entries))
    removals = []
    for path, job_id in entries:
        reason = _finished_or_gone(job_id, statuses)
        if reason is not None:
            removals.append(Removal(what, path, folder_bytes(path), why.format(reason=reason)))
    return removals


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def _param_versions(params: dict[str, Any]) -> list[int]:
    """Model version ids a job's params name (`*_version` keys, `model_versions`)."""
    ids = [v for k, v in params.items() if k.endswith("_version") and isinstance(v, int)]
    return ids + [v for v in params.get("model_versions") or [] if isinstance(v, int)]


def referenced_versions(session: Session) -> dict[int, str]:
    """Model version id -> what uses it: a round, a schedule or a queued or running job."""
    refs: dict[int, str] = {}
    for round_ in session.scalars(select(Round)):
        for version in (round_.start_policy_id, round_.reward_model_id, round_.policy_model_id):
            if version is not None:
                refs.setdefault(version, f"round {round_.id}")
    for schedule in session.scalars(select(Schedule)):
        for version in _param_versions(schedule.params or {}):
            refs.setdefault(version, f"schedule {schedule.name!r}")
    unfinished = select(Job).where(Job.status.in_([JobStatus.queued, JobStatus.running]))
    for job in session.scalars(unfinished):
        for version in _param_versions(job.params or {}):
            refs.setdefault(version, f"job {job.id} ({job.status.value})")
    return refs


def files_removed(model: ModelVersion) -> bool:
    """Whether `ranklab storage --apply` removed this version's files."""
    return model.files_removed_at is not None


def _kept_versions(models: list[ModelVersion], refs: dict[int, str], keep: int) -> set[int]:
    """Referenced versions, the newest `keep` unreferenced ones of each kind, and everything those need."""
    kept = set(refs)
    for kind in {m.kind for m in models}:
        newest = [m.id for m in sorted(models, key=lambda m: m.id, reverse=True) if m.kind == kind and m.id not in refs]
        kept.update(newest[:keep])
    by_id = {m.id: m for m in models}
    todo = list(kept)
    while todo:  # ancestors, and the reward / SFT versions a kept version names in its metrics
        model = by_id.get(todo.pop())
        if model is None:
            continue
        needed = [model.parent_id, *_param_versions(model.metrics or {})]
        for version in needed:
            if version is not None and version not in kept:
                kept.add(version)
                todo.append(version)
    return kept


def _version_removals(session: Session, data_dir: Path, keep: int) -> list[Removal]:
    models = list(session.scalars(select(ModelVersion)))
    kept = _kept_versions(models, referenced_versions(session), keep)
    removals = []
    for model in models:
        folder = Path(model.path)
        if model.id in kept or files_removed(model) or not folder.exists() or not _inside(folder, data_dir):
            continue
        reason = (
            f"{model.kind.value} v{model.id} ({model.name}): older than the newest {keep} unused {model.kind.value}"
        )
        removals.append(Removal("model files", folder, folder_bytes(folder), reason, model_version_id=model.id))
    return removals


def _database(session: Session) -> tuple[str, int, Path | None]:
    """(where the database is, its bytes, its file when it is a SQLite file)."""
    url = session.get_bind().engine.url
    if url.get_backend_name() == "postgresql":
        size = session.scalar(text("SELECT pg_database_size(current_database())")) or 0
        return f"PostgreSQL database {url.database} (on its server)", int(size), None
    path = Path(url.database or "")
    size = sum(folder_bytes(Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-shm"))
    return f"SQLite file {path}", size, path


def storage_report(
    session: Session,
    *,
    data_dir: Path,
    keep_versions: int,
    export_keep: int,
    export_max_age_days: float,
) -> StorageReport:
    """What uses the data folder, how much is free, and what `apply_removals` would remove (nothing is removed)."""
    data_dir = Path(data_dir)
    registered = {Path(m.path).resolve() for m in session.scalars(select(ModelVersion)) if m.path}
    models = data_dir / "models"
    model_folders = [p for p in models.iterdir() if not p.name.startswith(".")] if models.is_dir() else []
    sizes = {p: folder_bytes(p) for p in model_folders}
    checkpoints = list((data_dir / "checkpoints").iterdir()) if (data_dir / "checkpoints").is_dir() else []
    exports = export_files(data_dir)
    usage = [
        Usage("registered models", *_sum(s for p, s in sizes.items() if p.resolve() in registered)),
        Usage("unregistered model folders", *_sum(s for p, s in sizes.items() if p.resolve() not in registered)),
        Usage("checkpoints", *_sum(folder_bytes(p) for p in checkpoints)),
        Usage("exports", *_sum(folder_bytes(p) for p in exports)),
    ]
    database, database_bytes, database_file = _database(session)
    here = database_file is not None and _inside(database_file, data_dir)
    known = sum(u.bytes for u in usage) + (database_bytes if here else 0)
    total = folder_bytes(data_dir)
    usage.append(Usage("other files", max(total - known, 0), 0))
    free, disk = disk_space(data_dir)
    over = exports_over_retention(data_dir, keep=export_keep, max_age_days=export_max_age_days)
    removals = [
        *_entries_of_finished_jobs(
            session,
            data_dir / "checkpoints",
            _JOB_ENTRY,
            what="checkpoint",
            why="{reason}: nothing resumes from it",
            skip=set(),
        ),
        *_entries_of_finished_jobs(
            session,
            data_dir / "models",
            _ATTEMPT_FOLDER,
            what="model folder",
            why="never registered; {reason}",
            skip=registered,
        ),
        *(Removal("export", p, folder_bytes(p), "over the export retention") for p in over),
        *_version_removals(session, data_dir, keep_versions),
    ]
    return StorageReport(data_dir, total, usage, database, database_bytes, free, disk, removals)


def configured_report(session: Session, *, settings: Settings) -> StorageReport:
    """`storage_report` with the retention settings (RANKLAB_KEEP_MODEL_VERSIONS, RANKLAB_EXPORT_KEEP, ...)."""
    return storage_report(
        session,
        data_dir=settings.data_dir,
        keep_versions=settings.keep_model_versions,
        export_keep=settings.export_keep,
        export_max_age_days=settings.export_max_age_days,
    )


def _sum(sizes: Iterable[int]) -> tuple[int, int]:
    values = list(sizes)
    return sum(values), len(values)


def apply_removals(
    session: Session, *, removals: list[Removal], actor: User | None = None, now: datetime | None = None
) -> int:
    """Remove what a report planned, each removal in the audit log (`storage.remove`); returns the bytes freed.

    A version whose files go keeps its registry row, which records when and how much (`files_removed_at`)."""
    now = now or utcnow()
    freed = 0
    for removal in removals:
        if removal.path.is_dir() and not removal.path.is_symlink():
            shutil.rmtree(removal.path)
        elif removal.path.exists() or removal.path.is_symlink():
            os.unlink(removal.path)
        else:
            continue
        freed += removal.bytes
        if removal.model_version_id is not None:
            model = session.get(ModelVersion, removal.model_version_id)
            if model is not None:
                stamp = {"files_removed_at": now.isoformat(timespec="seconds"), "files_removed_bytes": removal.bytes}
                model.metrics = {**(model.metrics or {}), **stamp}
        data = {"what": removal.what, "path": str(removal.path), "bytes": removal.bytes, "reason": removal.reason}
        if removal.model_version_id is not None:
            data["model_version_id"] = removal.model_version_id
        audit.record(session, actor=actor, action="storage.remove", data=data)
    session.flush()
    return freed
