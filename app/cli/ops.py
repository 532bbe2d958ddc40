"""`ranklab storage`, `ranklab backup PATH`, `ranklab restore PATH`: keeping a long-running install healthy."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from app.cli import cli


def _size(n: int) -> str:
    from app.services.storage import human_bytes

    return human_bytes(n)


@cli.command()
def storage(
    apply: bool = typer.Option(False, "--apply", help="Remove what is listed (recorded in the audit log)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """What uses the data folder's disk, and what can go: checkpoints of finished jobs, never-registered model
    folders, exports over the retention, and the files of model versions beyond RANKLAB_KEEP_MODEL_VERSIONS per kind
    that nothing uses. Lists only; --apply removes."""
    from rich.console import Console
    from rich.table import Table

    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.services import storage as storage_service

    settings = get_settings()
    with get_sessionmaker().begin() as session:
        report = storage_service.configured_report(session, settings=settings)
        freed = storage_service.apply_removals(session, removals=report.removals) if apply else None
    if as_json:
        typer.echo(json.dumps(storage_service.report_dict(report) | {"freed_bytes": freed}, indent=2))
        return
    console = Console(width=160)
    console.print(
        f"Data folder {report.data_dir}: {_size(report.total_bytes)} used; {_size(report.free_bytes)} free of "
        f"{_size(report.disk_bytes)} on its disk"
    )
    usage = Table("what", "size", "entries")
    for u in report.usage:
        usage.add_row(u.category, _size(u.bytes), str(u.entries) if u.entries else "")
    usage.add_row(f"database: {report.database}", _size(report.database_bytes), "")
    console.print(usage)
    if not report.removals:
        console.print("Nothing to remove.")
        return
    plan = Table("what", "size", "path", "why")
    for r in report.removals:
        plan.add_row(r.what, _size(r.bytes), str(r.path), r.reason)
    total = f"{_size(report.removable_bytes)} in {len(report.removals)} entries"
    if freed is None:
        console.print("Would remove (nothing is removed without --apply; each removal goes to the audit log):")
        console.print(plan)
        console.print(f"Total: {total}. Run `ranklab storage --apply` to remove them.")
    else:
        console.print(plan)
        console.print(f"Removed {total}; {_size(freed)} freed. Each removal is in the audit log (storage.remove).")


@cli.command()
def backup(
    path: Path = typer.Argument(..., help="A new (or empty) folder to write the backup into."),
) -> None:
    """Write a consistent snapshot of the database while the server runs (SQLite's online backup API; pg_dump for
    PostgreSQL) and the model registry's manifest into PATH."""
    from app import backup as backup_ops
    from app.config import get_settings

    try:
        manifest = backup_ops.backup(get_settings().sqlalchemy_url, Path(path))
    except backup_ops.BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    rows = sum(manifest["tables"].values())
    typer.echo(
        f"backed up {len(manifest['tables'])} tables ({rows} rows, {len(manifest['models'])} model versions in the "
        f"manifest) to {path} in {manifest['seconds']:.1f} s"
    )


@cli.command()
def restore(
    path: Path = typer.Argument(..., help="A folder written by `ranklab backup`."),
) -> None:
    """Restore a backup into the configured database, which must be empty (a new database, or one only migrated).
    Stop the web server and the workers first."""
    from app import backup as backup_ops
    from app.config import get_settings

    try:
        report = backup_ops.restore(get_settings().sqlalchemy_url, Path(path))
    except backup_ops.BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"restored {len(report['tables'])} tables ({sum(report['tables'].values())} rows) from {path}")
    for line in report["notes"]:
        typer.echo(line)
