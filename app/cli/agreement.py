"""`ranklab agreement rebuild`: recompute the agreement aggregates from every ranking."""

from __future__ import annotations

import time

import typer

from app.cli import cli

agreement = typer.Typer(help="Agreement aggregates behind the dashboards.", no_args_is_help=True)
cli.add_typer(agreement, name="agreement")


@agreement.command("rebuild")
def rebuild() -> None:
    """Recompute every aggregate (after the migration that adds them, or after changing gold_window)."""
    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.services.agreement import aggregates

    start = time.perf_counter()
    with get_sessionmaker()() as session, session.begin():
        n = aggregates.rebuild(session, window=get_settings().gold_window)
    typer.echo(f"agreement aggregates rebuilt from {n} rankings in {time.perf_counter() - start:.1f} s")
