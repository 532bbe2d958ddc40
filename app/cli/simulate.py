"""`ranklab simulate`: simulated labelers with a known gold preference, against a running ranklab over HTTP."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import typer

from app.cli import cli

DEFAULT_MIX = "careful:6,noisy:3,random:2,tie-happy:1,first-shown:1"
DEMO_MIX = "careful:4,noisy:2,random:1,tie-happy:1,first-shown:1"
DEFAULT_GOLD_TASKS = 5
"""Hidden gold tasks a campaign makes sure of unless --gold-tasks says otherwise."""
DEMO_WAIT_S = 900.0
"""--demo: how long to wait for the server and the sampled tasks (SmolLM2 sampling on a 2-core CPU is slow)."""


def _local_admin(run: str) -> tuple[str, str]:
    """An admin account made directly in the local database (RANKLAB_DATABASE_URL), password kept in memory."""
    from app.db import get_sessionmaker
    from app.models import Role
    from app.services import users as user_service

    username, password = f"{run}-admin", secrets.token_urlsafe(18)
    with get_sessionmaker().begin() as session:
        user_service.create_user(session, username=username, password=password, role=Role.admin)
    return username, password


def _retire_local_admin(username: str) -> None:
    """Suspend the throw-away admin once the campaign is over (its tokens stop working at once)."""
    from sqlalchemy import select

    from app.db import get_sessionmaker
    from app.models import User, UserStatus

    with get_sessionmaker().begin() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is not None:
            user.status = UserStatus.suspended


def _credentials(admin: str | None, password_stdin: bool, local_admin: bool, run: str) -> tuple[str, str]:
    if local_admin:
        return _local_admin(run)
    if not admin:
        raise typer.BadParameter(
            "give --admin NAME (password in RANKLAB_ADMIN_PASSWORD or --admin-password-stdin) or --local-admin",
            param_hint="--admin",
        )
    password = sys.stdin.readline().rstrip("\n") if password_stdin else os.environ.get("RANKLAB_ADMIN_PASSWORD", "")
    if not password:
        password = typer.prompt(f"Password for {admin}", hide_input=True)
    return admin, password


def _import_synthetic(url: str, username: str, password: str, *, n: int, k: int, overlap: int, seed: int) -> None:
    from app.simulate.client import Api
    from app.simulate.synthetic import synthetic_tasks

    api = Api(url).login(username, password)
    try:
        for body in synthetic_tasks(n, k=k, seed=seed, overlap=overlap):
            api.create_task(body)
    finally:
        api.close()


LOG_EVERY_S = 30.0
"""Without a terminal (output to a log file), the progress is a line this often instead of a live bar."""


def _progress_run(cfg: Any) -> Any:
    """Run the campaign under a progress bar that shows rankings per second."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from app.simulate.driver import run_campaign

    columns = [TextColumn("simulated rankings"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, TextColumn("{task.fields[rate]}"), transient=False) as bar:
        task = bar.add_task("rank", total=cfg.max_rankings, rate="")
        started = last_line = time.monotonic()

        def tick(done: int) -> None:
            nonlocal last_line
            now = time.monotonic()
            rate = done / max(now - started, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:.1f} rankings/s")
            if not bar.console.is_terminal and now - last_line >= LOG_EVERY_S:
                # a log file (bash scripts/dev.sh --simulate) gets no live bar: a line now and then instead
                last_line = now
                typer.echo(f"simulated rankings: {done} of {cfg.max_rankings} in {now - started:.0f} s ({rate:.2f}/s)")

        return run_campaign(cfg, on_ranking=tick)


def _reward_model(url: str, username: str, password: str, path: Path, gold: Any, mix: Any) -> dict[str, Any]:
    from app.simulate.client import Api
    from app.simulate.gold import reward_model_scorer
    from app.simulate.report import reward_model_section

    scorer = reward_model_scorer(path)
    api = Api(url).login(username, password)
    try:
        return {"path": str(path), **reward_model_section(api, gold, scorer, mix=mix)}
    finally:
        api.close()


def _policy(
    url: str,
    username: str,
    password: str,
    version: int,
    gold: Any,
    reward_model: Path | None,
    prompts: int,
    **options: Any,
) -> dict[str, Any]:
    from app.simulate.client import Api
    from app.simulate.gold import policy_evaluator, reward_model_scorer
    from app.simulate.report import policy_section

    picker = reward_model_scorer(reward_model) if reward_model is not None else None
    api = Api(url).login(username, password)
    try:
        return policy_section(
            api, gold, policy_evaluator(), policy_version=version, picker=picker, prompts=prompts, **options
        )
    finally:
        api.close()


@cli.command()
def simulate(
    url: str = typer.Option("http://127.0.0.1:8000", help="The running ranklab to drive."),
    admin: str | None = typer.Option(None, help="Admin account that creates the simulated accounts."),
    admin_password_stdin: bool = typer.Option(
        False,
        "--admin-password-stdin",
        help="Read the admin password from standard input (else RANKLAB_ADMIN_PASSWORD, else a prompt).",
    ),
    local_admin: bool = typer.Option(
        False,
        "--local-admin",
        help="Make a throw-away admin in the local database (RANKLAB_DATABASE_URL, the "
        "server's own), suspended afterwards.",
    ),
    gold: str = typer.Option(
        "sentiment", help="Gold preference: sentiment, length[:WORDS], concept[:w1,w2], model:PATH."
    ),
    labelers: str = typer.Option(
        DEFAULT_MIX, help="Profiles and counts: careful, noisy, random, tie-happy, first-shown, longest."
    ),
    rankings: int = typer.Option(0, help="Stop after this many labeler rankings (0: when the queue is empty)."),
    screening_tasks: int | None = typer.Option(
        None, help="Screening tasks to make sure of (copies of production tasks; default RANKLAB_SCREENING_SET_SIZE)."
    ),
    gold_tasks: int = typer.Option(
        DEFAULT_GOLD_TASKS, help="Hidden gold tasks to make sure of (production tasks promoted)."
    ),
    synthetic_tasks: int = typer.Option(0, help="First import this many synthetic production tasks (bare install)."),
    k: int = typer.Option(4, help="Outputs per synthetic task."),
    overlap: int = typer.Option(2, help="Labelers per synthetic task."),
    wait_for_tasks: float = typer.Option(
        0.0, help="Seconds to wait for production tasks (a sampling job) and to keep polling an empty queue."
    ),
    concurrency: int = typer.Option(4, help="Labelers ranking at the same time."),
    demonstrations: int = typer.Option(
        0,
        help="Then a simulated researcher makes this many demonstration tasks and a demonstrator writes them (the "
        "gold-best sample, edited toward the gold); the researcher reviews them. SFT data for train_sft.",
    ),
    demonstration_starting_points: int = typer.Option(4, help="Sampled outputs each demonstration task offers."),
    seed: int = typer.Option(0, help="Seeds the labelers' choices and the synthetic tasks."),
    run_name: str | None = typer.Option(None, help="Account name prefix (default sim-<random>)."),
    report: Path | None = typer.Option(None, "--report", help="Write the report as JSON here."),
    reward_model: Path | None = typer.Option(
        None, help="A reward-model folder: its agreement with the gold on held-out prompts (needs torch)."
    ),
    only_reward_model: bool = typer.Option(
        False, "--only-reward-model", help="No campaign: only check --reward-model against the gold (held-out prompts)."
    ),
    policy_version: int | None = typer.Option(
        None,
        help="A policy version: its gold score and KL against its SFT model on held-out prompts, with best-of-n from "
        "SFT at the same KL (picked by --reward-model when given, else by the gold). Needs torch.",
    ),
    only_policy: bool = typer.Option(False, "--only-policy", help="No campaign: only measure --policy-version."),
    policy_prompts: int = typer.Option(16, help="Held-out prompts the policy is measured on."),
    policy_samples: int = typer.Option(8, help="Samples per held-out prompt from the policy (gold score and KL)."),
    best_of: str = typer.Option(
        "1,2,4,8,16", help="Best-of-n from SFT for these n (comma-separated; max(n) SFT samples per prompt)."
    ),
    policy_max_new_tokens: int = typer.Option(
        64, help="Most tokens per sample of the policy and of SFT (match the PPO job's response_length)."
    ),
    policy_temperature: float = typer.Option(
        1.0, help="Sampling temperature of both (the KL and the best-of-n KL hold at this temperature)."
    ),
    policy_batch_size: int = typer.Option(
        16, min=1, help="Sequences per generation batch when measuring (more is faster while memory allows)."
    ),
    screening_cutoff: float | None = typer.Option(
        None, help="The server's RANKLAB_SCREENING_CUTOFF (default: this machine's setting)."
    ),
    flag_cutoff: float | None = typer.Option(None, help="The server's RANKLAB_FLAG_CUTOFF (default: this machine's)."),
    demo: bool = typer.Option(
        False,
        "--demo",
        help=f"The demo campaign on the SmolLM2 samples: --local-admin, --labelers {DEMO_MIX}, "
        f"--wait-for-tasks {DEMO_WAIT_S:.0f} (unless given), report in the data folder.",
    ),
) -> None:
    """Simulated labelers rank through the public API; prints (and writes) the learning report."""
    import httpx

    from app.config import get_settings
    from app.simulate.client import ApiError
    from app.simulate.driver import CampaignConfig
    from app.simulate.gold import resolve_gold
    from app.simulate.profiles import parse_mix
    from app.simulate.report import build_report, fetch_product_view, format_report

    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    if demo:
        local_admin, labelers = True, labelers if labelers != DEFAULT_MIX else DEMO_MIX
        wait_for_tasks = wait_for_tasks or DEMO_WAIT_S
        report = report or settings.data_dir / "simulate-report.json"
    try:
        gold_pref, mix = resolve_gold(gold), parse_mix(labelers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if only_policy and policy_version is None:
        raise typer.BadParameter("--only-policy needs --policy-version ID", param_hint="--only-policy")
    try:
        best_of_ns = sorted({int(n) for n in best_of.split(",") if n.strip()})
    except ValueError:
        best_of_ns = []
    if not best_of_ns or best_of_ns[0] < 1 or policy_samples < 1 or policy_max_new_tokens < 1:
        raise typer.BadParameter(
            "--best-of takes n >= 1 such as 1,2,4,8,16; --policy-samples and --policy-max-new-tokens at least 1"
        )
    if only_reward_model and reward_model is None:
        raise typer.BadParameter("--only-reward-model needs --reward-model PATH", param_hint="--only-reward-model")
    run = run_name or f"sim-{secrets.token_hex(3)}"
    username, password = _credentials(admin, admin_password_stdin, local_admin, run)
    cfg = CampaignConfig(
        base_url=url,
        admin_username=username,
        admin_password=password,
        gold=gold_pref,
        mix=mix,
        max_rankings=rankings or None,
        screening_tasks=settings.screening_set_size if screening_tasks is None else screening_tasks,
        gold_tasks=gold_tasks,
        concurrency=concurrency,
        seed=seed,
        run_name=run,
        wait_for_tasks_s=wait_for_tasks,
        demonstrations=demonstrations,
        demonstration_starting_points=demonstration_starting_points,
    )
    cutoffs = (
        settings.screening_cutoff if screening_cutoff is None else screening_cutoff,
        settings.flag_cutoff if flag_cutoff is None else flag_cutoff,
    )
    try:
        if synthetic_tasks:
            _import_synthetic(url, username, password, n=synthetic_tasks, k=k, overlap=overlap, seed=seed)
        result: dict[str, Any] = {}
        if not (only_reward_model or only_policy):
            campaign = _progress_run(cfg)
            view = fetch_product_view(url, username=username, password=password)
            result = build_report(campaign, view, cutoffs=cutoffs, seed=seed)
        if reward_model is not None:
            result["reward_model"] = _reward_model(url, username, password, reward_model, gold_pref, mix)
        if policy_version is not None:
            result["policy"] = _policy(
                url, username, password, policy_version, gold_pref, reward_model, policy_prompts,
                samples=policy_samples, best_of=tuple(best_of_ns), max_new_tokens=policy_max_new_tokens,
                temperature=policy_temperature, seed=seed, batch_size=policy_batch_size,
            )  # fmt: skip
    except (ApiError, RuntimeError, httpx.TransportError) as exc:
        typer.echo(f"error: {exc or type(exc).__name__} ({url})", err=True)
        raise typer.Exit(1) from exc
    finally:
        if local_admin:
            _retire_local_admin(username)
    typer.echo(format_report(result))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result, indent=2) + "\n")
        typer.echo(f"report written to {report}")
