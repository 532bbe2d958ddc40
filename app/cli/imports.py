"""`ranklab import prompts FILE` and `ranklab import tasks FILE`."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli import cli

import_cli = typer.Typer(help="Import prompts or ranking tasks from JSONL/CSV files.", no_args_is_help=True)
cli.add_typer(import_cli, name="import")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
        raise typer.Exit(1) from exc


@import_cli.command("prompts")
def prompts(
    file: Path = typer.Argument(
        ...,
        help="JSONL, one conversation per line: {'text'|'prompt'}, {'messages'} (TRL/OpenAI), {'conversations'} "
        "(ShareGPT) or an HH transcript ('prompt'/'chosen'), with 'split'? and 'metadata'?; or CSV with a 'text' "
        "column.",
    ),
    split_ratio: str = typer.Option(
        "", help="train,validation,eval shares for prompts without a split, e.g. 0.8,0.1,0.1."
    ),
) -> None:
    """Import prompts; duplicates are reported, and a file with any bad line imports nothing."""
    from app.db import get_sessionmaker
    from app.errors import DomainError
    from app.services import imports
    from app.services.prompts import parse_split_ratios

    data = _read(file)
    try:
        with get_sessionmaker().begin() as session:
            ratios = parse_split_ratios(split_ratio) if split_ratio else None
            result = imports.import_prompts_file(
                session, data=data, filename=file.name, created_by=None, split_ratios=ratios
            )
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"created {result.created} prompt(s), {result.duplicates} duplicate(s) skipped")


@import_cli.command("tasks")
def tasks(
    file: Path = typer.Argument(..., help="JSONL: {'prompt', 'completions', 'model'?, 'kind'?, 'overlap'?}."),
) -> None:
    """Import ranking tasks sampled elsewhere; a file with any bad line imports nothing."""
    from app.db import get_sessionmaker
    from app.errors import DomainError
    from app.services import imports

    data = _read(file)
    try:
        with get_sessionmaker().begin() as session:
            ids = imports.import_tasks_file(session, data=data, created_by=None)
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"created {len(ids)} task(s)" + (f": ids {ids[0]}..{ids[-1]}" if ids else ""))
