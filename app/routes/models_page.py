"""The models page (researchers): reward versions side by side, policies with their evaluations, rounds of the loop
and the human evaluation; forms to train a reward model and to start a round. View data is prepared here."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.deps import CurrentResearcher, SessionDep, SettingsDep
from app.enums import WorkerStatus
from app.models import JobKind, JobStatus, ModelKind, ModelVersion, Round, RoundStatus, RoundStep
from app.routes.jobs_pages import model_row, waiting_text
from app.schemas.jobs import JOB_KINDS
from app.schemas.rounds import FILLED_BY_THE_ROUND, RoundParams
from app.services import evaluation as evaluation_service
from app.services import job_queue, model_charts, model_registry, param_forms
from app.services import jobs as job_service
from app.services import rounds as round_service
from app.services import workers as worker_service
from app.web import render

router = APIRouter(tags=["pages"])

REWARD_COLUMNS = (
    ("val_accuracy", "val. accuracy"),
    ("val_held_out_labeler_accuracy", "held-out labelers"),
    ("val_log_loss", "log loss"),
    ("val_calibration_error", "calibration error"),
    ("val_pairs", "val. pairs"),
    ("train_tasks", "train tasks"),
    ("rankings", "rankings"),
)
"""The evaluation figures the models page compares across reward versions, with their column titles."""
BY_K = "val_accuracy_k"
CHART_KEYS = ("id", "val_accuracy", "accuracy_by_k", "calibration")


def figure(value: Any, digits: int = 3) -> str:
    """A number as the tables show it ('—' when unknown)."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.{digits}f}"
    return str(int(value)) if isinstance(value, float) else str(value)


def reward_row(model: ModelVersion) -> dict[str, Any]:
    """One reward version with its evaluation, for the side-by-side table and charts."""
    metrics = model.metrics or {}
    return {
        "id": model.id,
        "name": model.name,
        "parent_id": model.parent_id or "",
        "job_id": model.job_id,
        "created": f"{model.created_at:%Y-%m-%d %H:%M}",
        "figures": [figure(metrics.get(key)) for key, _ in REWARD_COLUMNS],
        "accuracy_by_k": {k.removeprefix(BY_K): v for k, v in metrics.items() if k.startswith(BY_K)},
        "calibration": metrics.get("calibration", []),
        "val_accuracy": metrics.get("val_accuracy"),
    }


def sft_row(model: ModelVersion, names: dict[int, str]) -> dict[str, Any]:
    """One SFT version: its validation loss and perplexity (before -> after), the demonstrations it learned from."""
    metrics = model.metrics or {}
    data = metrics.get("data") or {}
    return {
        "id": model.id, "name": model.name, "job_id": model.job_id,
        "parent": f"{model.parent_id} ({names.get(model.parent_id, '?')})" if model.parent_id else "—",
        "val_loss": figure(metrics.get("val_loss")), "base_val_loss": figure(metrics.get("base_val_loss")),
        "perplexity": figure(metrics.get("val_perplexity"), 2),
        "base_perplexity": figure(metrics.get("base_val_perplexity"), 2),
        "demonstrations": figure(data.get("demonstrations")), "best_ranked": figure(data.get("best_ranked")),
        "created": f"{model.created_at:%Y-%m-%d %H:%M}",
    }  # fmt: skip


def policy_row(model: ModelVersion, human: evaluation_service.HumanEvaluation) -> dict[str, Any]:
    """A policy version: what PPO reached, its newest evaluation and its human win rate against its parent."""
    metrics, ev = model.metrics or {}, model_charts.newest_eval(model)
    return {
        "id": model.id, "name": model.name, "parent_id": model.parent_id, "job_id": model.job_id,
        "method": model_charts.training_method(model),
        "reward_version": metrics.get("reward_version"), "mean_score": figure(metrics.get("mean_score")),
        "kl": figure(metrics.get("kl")), "rm_win_rate": figure(ev.get("rm_win_rate")),
        "reward_gain": figure(ev.get("reward_gain")), "eval_kl": figure(ev.get("kl")),
        "alignment_tax": figure(ev.get("alignment_tax")), "baseline": ev.get("baseline_version"),
        "human": human_win_text(human, model.id, model.parent_id),
    }  # fmt: skip


def human_win_text(human: evaluation_service.HumanEvaluation, version: int, baseline: int | None) -> str:
    """'0.62 [0.51, 0.72] (n=40)': how often labelers preferred `version` to `baseline`, or '—'."""
    for pair in human.pairs:
        if {pair.a, pair.b} == {version, baseline}:
            rate, low, high = (
                (pair.win_rate, pair.low, pair.high)
                if pair.a == version
                else (1 - pair.win_rate, 1 - pair.high, 1 - pair.low)
            )
            interval = f" [{low:.2f}, {high:.2f}]" if low == low else ""  # nan under 3 rankings: no interval
            return f"{rate:.2f}{interval} (n={pair.comparisons})"
    return "—"


def round_row(
    round_: Round, models: dict[int, ModelVersion], human: evaluation_service.HumanEvaluation, waiting: str = ""
) -> dict:
    """One round side by side with the others: its reward model's accuracy, its policy's reward, KL, win rates."""
    rm = models.get(round_.reward_model_id or -1)
    policy = models.get(round_.policy_model_id or -1)
    ev = model_charts.newest_eval(policy)
    return {
        "id": round_.id, "status": round_.status.value, "step": round_.step.value, "error": round_.error or "",
        "waiting": waiting,
        "start": round_.start_policy_id, "reward": round_.reward_model_id, "policy": round_.policy_model_id,
        "rm_accuracy": figure((rm.metrics or {}).get("val_accuracy") if rm else None),
        "policy_reward": figure(ev.get("policy_reward")), "kl": figure(ev.get("kl")),
        "rm_win_rate": figure(ev.get("rm_win_rate")),
        "human": human_win_text(human, policy.id, policy.parent_id) if policy else "—",
        "jobs": [j for j in (round_.sample_job_id, round_.reward_job_id, round_.policy_job_id,
                             round_.evaluate_job_id) if j],
    }  # fmt: skip


def _script_json(value: Any) -> str:
    """JSON safe to place inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c")


def train_reward_form() -> dict[str, Any]:
    """The models page's train_reward form: one field per param (from its JSON Schema), each at its default."""
    fields = param_forms.form_for(JOB_KINDS[JobKind.train_reward].params_model, id_prefix="rm-")
    return {"kind": JobKind.train_reward.value, "fields": fields}


ROUND_STEPS = (("sample", JobKind.sample), ("reward", JobKind.train_reward), ("policy", JobKind.train_policy),
               ("evaluate", JobKind.evaluate))  # fmt: skip


def round_form() -> dict[str, Any]:
    """The start-a-round form: min_new_rankings, then each step's job params (the versions the round fills in left
    out), at the round's defaults."""
    defaults = RoundParams().model_dump(mode="json")
    own = RoundParams.model_json_schema()
    top = {**own, "properties": {"min_new_rankings": own["properties"]["min_new_rankings"]}}
    sections = [
        {
            "step": step,
            "help": own["properties"][step].get("description", ""),
            "fields": param_forms.form_for(JOB_KINDS[kind].params_model, prefix=f"{step}.", values=defaults[step],
                                           skip=FILLED_BY_THE_ROUND, id_prefix="round-"),
        }
        for step, kind in ROUND_STEPS
    ]  # fmt: skip
    return {"fields": param_forms.fields_from_schema(top, id_prefix="round-"), "sections": sections}


def waiting_for(session: SessionDep, round_: Round, *, live_workers: int, stale_after_s: float, poll_s: float) -> str:
    """Why a running round's current step has not moved on yet, in one sentence ('' when it is not running)."""
    if round_.status != RoundStatus.running:
        return ""
    no_worker = "" if live_workers else " No worker is alive, and rounds move on only while one runs (ranklab worker)."
    if round_.step == RoundStep.rank:
        got, wanted = round_service.new_rankings(session, round_), int(round_.params["min_new_rankings"])
        return f"Waiting for rankings: {got} of the {wanted} new rankings it needs.{no_worker}"
    job_id = round_service.current_job_id(round_)
    job = job_service.get_job(session, job_id=job_id) if job_id is not None else None
    if job is None:
        return no_worker.strip()
    if job.status == JobStatus.queued:
        state = job_queue.queue_state(session, job=job, stale_after_s=stale_after_s)
        return f"Its {job.kind.value} job {job.id} is queued. " + waiting_text(
            state, kind=job.kind.value, poll_s=poll_s
        )
    if job.status == JobStatus.running:
        return f"Its {job.kind.value} job {job.id} is running ({round(job.progress * 100)}%).{no_worker}"
    return (
        f"Its {job.kind.value} job {job.id} {job.status.value}; the round moves on at a worker's next look.{no_worker}"
    )


@router.get("/models", response_class=HTMLResponse, name="models_page")
def models_page(request: Request, session: SessionDep, settings: SettingsDep, user: CurrentResearcher) -> HTMLResponse:
    models = model_registry.list_models(session)
    by_id = {m.id: m for m in models}
    human = evaluation_service.human_evaluation(session)
    rounds = round_service.list_rounds(session)
    stale = settings.worker_stale_after_s
    workers = worker_service.list_workers(session, stale_after_s=stale)
    alive = sum(w.status in (WorkerStatus.idle, WorkerStatus.running) for w in workers)
    rewards = [reward_row(m) for m in models if m.kind == ModelKind.reward]
    charts = {
        "reward_kl": model_charts.reward_vs_kl(models),
        "rm_accuracy": model_charts.rm_accuracy(models, rounds),
        "human": model_charts.human_eval(models, human, evaluation_service.criteria_by_version(session)),
    }
    return render(
        request,
        "jobs/models.html",
        user=user,
        models=[model_row(m) for m in models],
        rewards=rewards,
        reward_columns=[title for _, title in REWARD_COLUMNS],
        reward_chart=_script_json([{k: r[k] for k in CHART_KEYS} for r in rewards]),
        charts=charts,
        chart_tables=model_charts.chart_tables(charts),
        charts_json=_script_json(charts),
        policies=[policy_row(m, human) for m in models if m.kind == ModelKind.policy],
        sfts=[sft_row(m, {v.id: v.name for v in models}) for m in models if m.kind == ModelKind.sft],
        rounds=[
            round_row(
                r,
                by_id,
                human,
                waiting_for(session, r, live_workers=alive, stale_after_s=stale, poll_s=settings.worker_poll_s),
            )
            for r in rounds
        ],  # fmt: skip
        running=[r.id for r in rounds if r.status == RoundStatus.running],
        round_form=round_form(),
        ratings=[
            {"id": v, "name": by_id[v].name if v in by_id else v, "rating": f"{r:+.0f}"}
            for v, r in sorted(human.ratings.items(), key=lambda kv: -kv[1])
        ],  # fmt: skip
        form=train_reward_form(),
    )
