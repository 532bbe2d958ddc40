"""Simulated demonstrations: a researcher makes demonstration tasks on prompts with sampled outputs, a demonstrator
writes each answer as the gold-best of the task's samples edited toward the gold (`GoldPreference.improve`), and the
researcher reviews them (accepts an answer at least as good as the median sample, by the gold). Through the public
API only, like the ranking campaign.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.simulate.client import Api
from app.simulate.gold import GoldPreference

logger = logging.getLogger(__name__)


@dataclass
class DemonstrationRecord:
    """One written demonstration and what the gold says of it and of the samples it started from."""

    demonstration_id: int
    prompt_id: int
    gold: float
    """Gold score of the demonstration."""
    sample_golds: list[float]
    """Gold scores of the task's sampled outputs (its starting points)."""
    rewritten: bool
    accepted: bool = False


@dataclass
class DemonstrationRun:
    """What the simulated demonstration step did."""

    records: list[DemonstrationRecord] = field(default_factory=list)
    tasks_made: int = 0


def write_demonstration(assignment: dict[str, Any], gold: GoldPreference) -> tuple[dict[str, Any], float, list[float]]:
    """The answer a demonstrator writes: the gold-best starting point, edited toward the gold; with no starting
    point, the gold's edit of an empty answer. Returns (request body, its gold score, the samples' gold scores)."""
    prompt = assignment["prompt"]["messages"]
    samples = assignment["completions"]
    scores = gold.scores(prompt, [c["text"] for c in samples]).tolist() if samples else []
    best = samples[int(np.argmax(scores))] if samples else None
    text = best["text"] if best is not None else "Here is my answer."
    if gold.improve is not None:
        text = gold.improve(text)
    body = {"content": text, "idempotency_key": f"demo-{assignment['assignment_id']}"}
    if best is not None:
        body["source_completion_id"] = best["id"]
    return body, float(gold.scores(prompt, [text])[0]), scores


def run_demonstrations(
    admin: Api, researcher: Api, demonstrator: Api, *, gold: GoldPreference, count: int, starting_points: int
) -> DemonstrationRun:
    """Make up to `count` demonstration tasks (on prompts of production tasks, newest first), write and review
    them."""
    run = DemonstrationRun()
    prompt_ids = list(dict.fromkeys(t["prompt_id"] for t in admin.tasks(kind="production")))[:count]
    if not prompt_ids:
        return run
    made = researcher.create_demonstration_tasks({"prompt_ids": prompt_ids, "starting_points": starting_points})
    run.tasks_made = int(made["created"])
    while (assignment := demonstrator.next_assignment("demonstration")) is not None:
        body, score, sample_scores = write_demonstration(assignment, gold)
        stored = demonstrator.submit_demonstration(assignment["assignment_id"], body)
        run.records.append(
            DemonstrationRecord(
                stored["id"], assignment["prompt"]["id"], score, sample_scores, "source_completion_id" in body
            )
        )
    by_id = {r.demonstration_id: r for r in run.records}
    for demo in researcher.demonstrations(status="submitted"):
        record = by_id.get(demo["id"])
        if record is None:
            continue  # not this run's
        median = float(np.median(record.sample_golds)) if record.sample_golds else -np.inf
        record.accepted = record.gold >= median
        review = {"action": "accept"} if record.accepted else {"action": "reject", "reason": "worse than the samples"}
        researcher.review_demonstration(demo["id"], review)
    logger.info("%d demonstrations written, %d accepted", len(run.records), sum(r.accepted for r in run.records))
    return run


def demonstration_section(run: DemonstrationRun) -> dict[str, Any]:
    """The report's demonstration figures: how much better than its samples each written answer is, by the gold."""
    if not run.records:
        return {"tasks": run.tasks_made, "written": 0}
    golds = np.array([r.gold for r in run.records])
    with_samples = [r for r in run.records if r.sample_golds]
    return {
        "tasks": run.tasks_made,
        "written": len(run.records),
        "accepted": sum(r.accepted for r in run.records),
        "rewritten": sum(r.rewritten for r in run.records),
        "gold_mean": float(golds.mean()),
        "sample_gold_mean": float(np.mean([np.mean(r.sample_golds) for r in with_samples])) if with_samples else None,
        "best_sample_gold_mean": float(np.mean([max(r.sample_golds) for r in with_samples])) if with_samples else None,
    }


def demonstrator_account(admin: Api, base_url: str, run_name: str) -> Api:
    """An active labeler account for the simulated demonstrator (it writes; it is not screened on rankings)."""
    password = secrets.token_urlsafe(18)
    username = f"{run_name}-demonstrator"
    admin.create_user(username=username, password=password, role="labeler", status="active")
    return Api(base_url).login(username, password)
