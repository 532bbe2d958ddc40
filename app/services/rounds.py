"""Rounds of the loop: [fine-tune on new demonstrations ->] sample with the newest policy -> labelers rank -> train
the RM -> train the policy (PPO, or DPO straight from the rankings) -> evaluate.

A round is a row that remembers its step and the jobs it queued. `advance_rounds` (run by the worker that holds
the scheduler lease, next to the schedules) moves every running round on when its current job has succeeded (or
enough new rankings arrived), queues the next step's job with the versions the previous steps produced, and fails
the round, with the reason, when a job failed or was cancelled. The web side only creates, lists and cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, DomainError, InvalidInput, NotFound
from app.models import (
    Demonstration,
    DemonstrationStatus,
    Job,
    JobKind,
    JobStatus,
    ModelKind,
    ModelVersion,
    Ranking,
    RankingTask,
    Round,
    RoundStatus,
    RoundStep,
    User,
    utcnow,
)
from app.schemas.rounds import RoundParams
from app.services import jobs as job_service
from app.services import model_registry as registry

FAILED = (JobStatus.failed, JobStatus.cancelled)


def start_policy(session: Session) -> int:
    """The version a new round samples from: the newest policy, else the newest SFT model."""
    model = registry.newest_model(session, kind=ModelKind.policy) or registry.newest_model(session, kind=ModelKind.sft)
    if model is None:
        raise InvalidInput("no SFT or policy model to start a round from: run `ranklab demo` or `ranklab models add`")
    return model.id


def create_round(
    session: Session, *, params: RoundParams, created_by: User | None = None, max_attempts: int = 3
) -> Round:
    """Start a round: its SFT job (when it fine-tunes on new demonstrations) or its sampling job is queued now."""
    fine_tune = params.sft is not None and untrained_demonstrations(session) > 0
    policy_id = None if fine_tune else start_policy(session)
    round_ = Round(status=RoundStatus.running, step=RoundStep.sft if fine_tune else RoundStep.sample,
                   params=params.model_dump(mode="json"), start_policy_id=policy_id,
                   created_by_id=created_by.id if created_by else None)  # fmt: skip
    session.add(round_)
    if fine_tune:
        job = job_service.enqueue_job(
            session, kind=JobKind.train_sft, params=dict(params.sft or {}), created_by=created_by,
            max_attempts=max_attempts,
        )  # fmt: skip
        round_.sft_job_id = job.id
    else:
        round_.sample_job_id = _queue_sample(session, round_, max_attempts, created_by=created_by)
    session.flush()
    return round_


def untrained_demonstrations(session: Session) -> int:
    """Accepted demonstrations newer than every one an SFT model was trained on (`train_sft` records the newest id
    it used as ``metrics["data"]["max_demonstration_id"]``)."""
    trained = 0
    for metrics in session.scalars(select(ModelVersion.metrics).where(ModelVersion.kind == ModelKind.sft)):
        trained = max(trained, int((metrics or {}).get("data", {}).get("max_demonstration_id") or 0))
    stmt = (
        select(func.count())
        .select_from(Demonstration)
        .where(Demonstration.status == DemonstrationStatus.accepted, Demonstration.id > trained)
    )
    return session.scalar(stmt) or 0


def _queue_sample(session: Session, round_: Round, max_attempts: int, created_by: User | None = None) -> int:
    params = {**round_.params["sample"], "policy_version": round_.start_policy_id}
    return job_service.enqueue_job(
        session, kind=JobKind.sample, params=params, created_by=created_by, max_attempts=max_attempts
    ).id


def list_rounds(session: Session, *, limit: int = 50) -> list[Round]:
    """Newest first."""
    return list(session.scalars(select(Round).order_by(Round.id.desc()).limit(limit)))


def get_round(session: Session, *, round_id: int, for_update: bool = False) -> Round:
    stmt = select(Round).where(Round.id == round_id)
    round_ = session.scalar(stmt.with_for_update() if for_update else stmt)
    if round_ is None:
        raise NotFound(f"no round with id {round_id}")
    return round_


def cancel_round(session: Session, *, round_id: int, actor: User | None = None) -> Round:
    """Stop a running round and ask its current job to stop."""
    round_ = get_round(session, round_id=round_id, for_update=True)
    if round_.status != RoundStatus.running:
        raise Conflict(f"round {round_id} is {round_.status.value}, not running")
    job_id = current_job_id(round_)
    if job_id is not None and job_service.get_job(session, job_id=job_id).status not in (*FAILED, JobStatus.succeeded):
        job_service.request_cancel(session, job_id=job_id, actor=actor)
    _end(round_, RoundStatus.cancelled, "cancelled by a researcher")
    return round_


def new_rankings(session: Session, round_: Round) -> int:
    """Rankings of the tasks the round's sampling job made."""
    stmt = select(func.count()).select_from(Ranking).join(RankingTask, RankingTask.id == Ranking.task_id)
    return session.scalar(stmt.where(RankingTask.job_id == round_.sample_job_id)) or 0


def advance_rounds(session: Session, *, max_attempts: int = 3) -> list[Round]:
    """Move every running round on as far as its jobs allow; returns the rounds that changed."""
    changed = []
    for round_ in session.scalars(select(Round).where(Round.status == RoundStatus.running).with_for_update()):
        before = (round_.step, round_.status)
        try:
            while round_.status == RoundStatus.running and STEPS[round_.step](session, round_, max_attempts):
                pass
        except DomainError as exc:  # the next job's params were refused (e.g. a version was deleted)
            _end(round_, RoundStatus.failed, f"could not queue the {round_.step.value} step's job: {exc.message}")
        if (round_.step, round_.status) != before:
            round_.updated_at = utcnow()
            changed.append(round_)
    session.flush()
    return changed


def current_job_id(round_: Round) -> int | None:
    return {
        RoundStep.sft: round_.sft_job_id,
        RoundStep.sample: round_.sample_job_id,
        RoundStep.reward: round_.reward_job_id,
        RoundStep.policy: round_.policy_job_id,
        RoundStep.evaluate: round_.evaluate_job_id,
    }.get(round_.step)


def _end(round_: Round, status: RoundStatus, error: str | None = None) -> None:
    round_.status, round_.error, round_.updated_at = status, error, utcnow()


def _finished(session: Session, round_: Round, job_id: int | None) -> Job | None:
    """The step's job once it succeeded; fails the round when it failed; None while it runs."""
    job = job_service.get_job(session, job_id=job_id) if job_id is not None else None
    if job is None:
        _end(round_, RoundStatus.failed, f"the {round_.step.value} step has no job")
    elif job.status in FAILED:
        _end(round_, RoundStatus.failed, f"{job.kind.value} job {job.id} {job.status.value}: {job.error or ''}".strip())
    elif job.status == JobStatus.succeeded:
        return job
    return None


def _queue(session: Session, round_: Round, kind: JobKind, params: dict[str, Any], max_attempts: int) -> int:
    job = job_service.enqueue_job(session, kind=kind, params=params, max_attempts=max_attempts)
    return job.id


def _sft(session: Session, round_: Round, max_attempts: int) -> bool:
    job = _finished(session, round_, round_.sft_job_id)
    if job is None:
        return False
    round_.start_policy_id = job.output_model_id
    round_.sample_job_id = _queue_sample(session, round_, max_attempts)
    round_.step = RoundStep.sample
    return True


def _sample(session: Session, round_: Round, max_attempts: int) -> bool:
    if _finished(session, round_, round_.sample_job_id) is None:
        return False
    round_.step = RoundStep.rank
    return True


def _rank(session: Session, round_: Round, max_attempts: int) -> bool:
    if new_rankings(session, round_) < int(round_.params["min_new_rankings"]):
        return False
    if not RoundParams.model_validate(round_.params).trains_reward:
        _queue_policy(session, round_, max_attempts)
        return True
    round_.reward_job_id = _queue(session, round_, JobKind.train_reward, dict(round_.params["reward"]), max_attempts)
    round_.step = RoundStep.reward
    return True


def _reward(session: Session, round_: Round, max_attempts: int) -> bool:
    job = _finished(session, round_, round_.reward_job_id)
    if job is None:
        return False
    round_.reward_model_id = job.output_model_id
    _queue_policy(session, round_, max_attempts)
    return True


def _queue_policy(session: Session, round_: Round, max_attempts: int) -> None:
    """Queue the policy step: PPO against the round's reward model, or DPO on the rankings."""
    params = {k: v for k, v in round_.params["policy"].items() if k != "method"}
    params["policy_version"] = round_.start_policy_id
    if round_.params["policy"].get("method", "ppo") == "dpo":
        round_.policy_job_id = _queue(session, round_, JobKind.train_dpo, params, max_attempts)
    else:
        params["reward_version"] = round_.reward_model_id
        round_.policy_job_id = _queue(session, round_, JobKind.train_policy, params, max_attempts)
    round_.step = RoundStep.policy


def _policy(session: Session, round_: Round, max_attempts: int) -> bool:
    job = _finished(session, round_, round_.policy_job_id)
    if job is None:
        return False
    round_.policy_model_id = job.output_model_id
    params = {**round_.params["evaluate"], "policy_version": job.output_model_id}
    reward = round_.reward_model_id or getattr(registry.newest_model(session, kind=ModelKind.reward), "id", None)
    if reward is not None:  # a DPO round without a reward model of its own uses the newest one, if any
        params["reward_version"] = reward
    round_.evaluate_job_id = _queue(session, round_, JobKind.evaluate, params, max_attempts)
    round_.step = RoundStep.evaluate
    return True


def _evaluate(session: Session, round_: Round, max_attempts: int) -> bool:
    if _finished(session, round_, round_.evaluate_job_id) is None:
        return False
    round_.step = RoundStep.done
    _end(round_, RoundStatus.succeeded)
    return False


STEPS: dict[RoundStep, Callable[[Session, Round, int], bool]] = {
    RoundStep.sft: _sft,
    RoundStep.sample: _sample,
    RoundStep.rank: _rank,
    RoundStep.reward: _reward,
    RoundStep.policy: _policy,
    RoundStep.evaluate: _evaluate,
    RoundStep.done: lambda session, round_, max_attempts: False,
}
"""Each step checks its condition; True when it moved the round to the next step (which is then checked too)."""
