"""`ranklab models add|list`: the model registry from the command line (torch-free)."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli import cli
from app.models import ModelKind

models_cli = typer.Typer(help="The model registry (SFT, reward and policy versions).", no_args_is_help=True)
cli.add_typer(models_cli, name="models")


@models_cli.command("add")
def models_add(
    path: Path = typer.Argument(..., help="Folder of a Hugging Face-format model (config, safetensors, tokenizer)."),
    kind: ModelKind = typer.Option(
        ..., "--kind", help="base (a model to fine-tune with train_sft), sft, reward or policy."
    ),
    name: str | None = typer.Option(None, "--name", help="Display name (default: the folder name)."),
    parent: int | None = typer.Option(None, "--parent", help="ModelVersion id this one was trained from."),
    copy: bool = typer.Option(
        True,
        "--copy/--in-place",
        help="Copy the folder into RANKLAB_DATA_DIR/models (default; workers on other machines see the data "
        "folder), or register it where it is.",
    ),
) -> None:
    """Register a local Hugging Face model folder as a model version."""
    import shutil

    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.errors import DomainError
    from app.services import model_registry

    display = name or path.resolve().name
    try:
        folder = model_registry.check_model_dir(path)
        if copy:
            with Progress(
                "copying into the data folder", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True
            ) as bar:
                task = bar.add_task("copy", total=None)
                folder = model_registry.copy_into_data_dir(
                    folder,
                    data_dir=get_settings().data_dir,
                    kind=kind,
                    name=display,
                    on_bytes=lambda done, total: bar.update(task, completed=done, total=total),
                )
        try:
            with get_sessionmaker().begin() as session:
                version = model_registry.register_model(session, kind=kind, name=display, path=folder, parent_id=parent)
                typer.echo(
                    f"registered {version.kind.value} model {version.name!r} as version {version.id} ({version.path})"
                )
        except DomainError:
            if copy:  # not registered: do not leave an orphan copy behind
                shutil.rmtree(folder, ignore_errors=True)
            raise
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@models_cli.command("list")
def models_list(kind: ModelKind | None = typer.Option(None, "--kind", help="Only this kind.")) -> None:
    """List model versions, newest first."""
    from rich.console import Console
    from rich.table import Table

    from app.db import get_sessionmaker
    from app.services import model_registry

    table = Table("id", "kind", "name", "parent", "job", "path")
    with get_sessionmaker()() as session:
        for m in model_registry.list_models(session, kind=kind):
            table.add_row(str(m.id), m.kind.value, m.name, str(m.parent_id or ""), str(m.job_id or ""), m.path)
    Console().print(table)
