"""`ranklab export`: stream comparisons as JSON lines to a file or standard output."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Literal

import typer

from app.cli import cli
from app.models import Split


@cli.command("export")
def export(
    format: str = typer.Option("pairs", "--format", help="pairs (prompt/chosen/rejected) or rankings (K in buckets)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write; standard output if not given."),
    active_only: bool = typer.Option(False, help="Only labelers whose account is active."),
    min_agreement: float | None = typer.Option(
        None, help="Only labelers with at least this agreement with researchers."
    ),
    split: Split | None = typer.Option(None, help="Only prompts of this split."),
    exclude_flag: list[str] = typer.Option([], "--exclude-flag", help="Leave out outputs flagged with this flag."),
) -> None:
    """Export comparisons with provenance (pseudonymous labeler ids), as `datasets.load_dataset("json")` reads them."""
    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.errors import DomainError
    from app.services import exports

    if format not in ("pairs", "rankings"):
        typer.echo("error: --format must be pairs or rankings", err=True)
        raise typer.Exit(2)
    fmt: Literal["pairs", "rankings"] = "pairs" if format == "pairs" else "rankings"
    options = exports.ExportOptions(
        format=fmt, active_only=active_only, min_agreement=min_agreement, split=split, exclude_flags=tuple(exclude_flag)
    )
    try:
        lines = exports.export_lines(get_sessionmaker().begin, settings=get_settings(), options=options)
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    count = 0
    with output.open("w", encoding="utf-8") if output else nullcontext(sys.stdout) as out:
        for line in lines:
            out.write(line)
            count += 1
    typer.echo(f"exported {count} {fmt} lines" + (f" to {output}" if output else ""), err=True)
