"""`ranklab demonstrations create|list`: demonstration tasks from prompts, and what labelers wrote (torch-free)."""

from __future__ import annotations

import typer

from app.cli import cli
from app.models import DemonstrationStatus, Split, TaskKind

demos_cli = typer.Typer(help="Demonstrations: labelers write the assistant's answer (SFT data).", no_args_is_help=True)
cli.add_typer(demos_cli, name="demonstrations")


@demos_cli.command("create")
def create(
    prompt: list[int] = typer.Option([], "--prompt", "-p", help="A prompt id (repeat for several)."),
    split: Split | None = typer.Option(None, help="Every prompt of this split (with --limit)."),
    limit: int | None = typer.Option(None, help="With --split: at most this many prompts, lowest ids first."),
    overlap: int = typer.Option(1, help="How many labelers write an answer to each prompt."),
    starting_points: int = typer.Option(0, help="Offer up to this many of each prompt's sampled outputs to rewrite."),
    screening: bool = typer.Option(False, help="Make them part of new labelers' screening set (reviewed by you)."),
) -> None:
    """Create one demonstration task per prompt."""
    from sqlalchemy import select

    from app.db import get_sessionmaker
    from app.errors import DomainError
    from app.models import Prompt
    from app.services import demonstrations

    if bool(prompt) == (split is not None):
        typer.echo("error: give --prompt ids or --split, not both (nor neither)", err=True)
        raise typer.Exit(2)
    try:
        with get_sessionmaker().begin() as session:
            ids = list(prompt)
            if split is not None:
                ids = list(
                    session.scalars(select(Prompt.id).where(Prompt.split == split).order_by(Prompt.id).limit(limit))
                )
            tasks = demonstrations.create_demonstration_tasks(
                session,
                prompt_ids=ids,
                created_by=None,
                kind=TaskKind.screening if screening else TaskKind.production,
                overlap=overlap,
                starting_points=starting_points,
            )
            typer.echo(f"created {len(tasks)} demonstration task(s): ids {tasks[0].id}..{tasks[-1].id}")
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@demos_cli.command("list")
def list_(
    status: DemonstrationStatus | None = typer.Option(None, help="submitted (to review), accepted or rejected."),
    limit: int = typer.Option(20, help="How many to list."),
) -> None:
    """The newest demonstrations (the oldest first when listing those waiting for review)."""
    from rich.console import Console
    from rich.table import Table

    from app.db import get_sessionmaker
    from app.services import demonstration_review

    table = Table("id", "labeler", "status", "origin", "prompt", "answer")
    with get_sessionmaker().begin() as session:
        rows, total = demonstration_review.list_demonstrations(session, status=status, limit=limit)
        for row in rows:
            d = row.demonstration
            table.add_row(str(d.id), row.username, d.status.value, d.origin.value, row.prompt.text[:40], d.content[:60])
    Console().print(table)
    typer.echo(f"{len(rows)} of {total}")
