"""The models page (researchers): reward versions side by side, policies with their evaluations, rounds of the loop
and the human evaluation; forms to train a reward model and to start a round. View data is prepared here."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.deps import CurrentResearcher, SessionDep
from app.models import JobKind, ModelKind, ModelVersion, Round
from app.routes.jobs_pages import model_row, param_docs
from app.schemas.jobs import JOB_KINDS
from app.schemas.rounds import RoundParams
from app.services import evaluation as evaluation_service
from app.services import model_registry
from app.services import rounds as round_service
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


def _newest_eval(model: ModelVersion | None) -> dict[str, Any]:
    evals = (model.metrics or {}).get("eval", {}) if model is not None else {}
    return max(evals.values(), key=lambda e: e.get("job_id") or 0) if evals else {}


def policy_row(model: ModelVersion, human: evaluation_service.HumanEvaluation) -> dict[str, Any]:
    """A policy version: what PPO reached, its newest evaluation and its human win rate against its parent."""
    metrics, ev = model.metrics or {}, _newest_eval(model)
    return {
        "id": model.id, "name": model.name, "parent_id": model.parent_id, "job_id": model.job_id,
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


def round_row(round_: Round, models: dict[int, ModelVersion], human: evaluation_service.HumanEvaluation) -> dict:
    """One round side by side with the others: its reward model's accuracy, its policy's reward, KL, win rates."""
    rm = models.get(round_.reward_model_id or -1)
    policy = models.get(round_.policy_model_id or -1)
    ev = _newest_eval(policy)
    return {
        "id": round_.id, "status": round_.status.value, "step": round_.step.value, "error": round_.error or "",
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
    """The models page's form: every train_reward param at its default, with the docs."""
    defaults = JOB_KINDS[JobKind.train_reward].params_model().model_dump(mode="json")
    doc = next(k for k in param_docs() if k["kind"] == JobKind.train_reward.value)
    return {"kind": JobKind.train_reward.value, "params": json.dumps(defaults, indent=2), "doc": doc}


@router.get("/models", response_class=HTMLResponse, name="models_page")
def models_page(request: Request, session: SessionDep, user: CurrentResearcher) -> HTMLResponse:
    models = model_registry.list_models(session)
    by_id = {m.id: m for m in models}
    human = evaluation_service.human_evaluation(session)
    rewards = [reward_row(m) for m in models if m.kind == ModelKind.reward]
    return render(
        request,
        "jobs/models.html",
        user=user,
        models=[model_row(m) for m in models],
        rewards=rewards,
        reward_columns=[title for _, title in REWARD_COLUMNS],
        reward_chart=_script_json([{k: r[k] for k in CHART_KEYS} for r in rewards]),
        policies=[policy_row(m, human) for m in models if m.kind == ModelKind.policy],
        rounds=[round_row(r, by_id, human) for r in round_service.list_rounds(session)],
        round_params=json.dumps(RoundParams().model_dump(mode="json"), indent=2),
        ratings=[
            {"id": v, "name": by_id[v].name if v in by_id else v, "rating": f"{r:+.0f}"}
            for v, r in sorted(human.ratings.items(), key=lambda kv: -kv[1])
        ],  # fmt: skip
        form=train_reward_form(),
    )
