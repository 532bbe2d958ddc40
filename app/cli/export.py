"""`ranklab export`: stream comparisons (or, with `--format sft`, accepted demonstrations) as JSON lines to a file or
standard output."""

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
    format: str = typer.Option(
        "pairs",
        "--format",
        help="pairs (prompt/chosen/rejected), rankings (K in buckets) or sft (accepted demonstrations as messages).",
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write; standard output if not given."),
    active_only: bool = typer.Option(False, help="Only labelers whose account is active."),
    min_agreement: float | None = typer.Option(
        None, help="Only labelers with at least this agreement with researchers."
    ),
    split: Split | None = typer.Option(None, help="Only prompts of this split."),
    exclude_flag: list[str] = typer.Option([], "--exclude-flag", help="Leave out outputs flagged with this flag."),
    include_best_ranked: bool = typer.Option(
        False, help="sft: also each ranking's output placed alone at rank 1 (best-of-K)."
    ),
) -> None:
    """Export comparisons or demonstrations with provenance (pseudonymous labeler ids), as
    `datasets.load_dataset("json")` and TRL's trainers read them."""
    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.errors import DomainError
    from app.services import exports, sft_export

    if format not in ("pairs", "rankings", "sft"):
        typer.echo("error: --format must be pairs, rankings or sft", err=True)
        raise typer.Exit(2)
    sessions, settings = get_sessionmaker().begin, get_settings()
    try:
        if format == "sft":
            sft = sft_export.SftOptions(active_only=active_only, split=split, include_best_ranked=include_best_ranked)
            lines = sft_export.sft_lines(sessions, settings=settings, options=sft)
        else:
            fmt: Literal["pairs", "rankings"] = "pairs" if format == "pairs" else "rankings"
            options = exports.ExportOptions(
                format=fmt,
                active_only=active_only,
                min_agreement=min_agreement,
                split=split,
                exclude_flags=tuple(exclude_flag),
            )
            lines = exports.export_lines(sessions, settings=settings, options=options)
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    count = 0
    with output.open("w", encoding="utf-8") if output else nullcontext(sys.stdout) as out:
        for line in lines:
            out.write(line)
            count += 1
    typer.echo(f"exported {count} {format} lines" + (f" to {output}" if output else ""), err=True)
