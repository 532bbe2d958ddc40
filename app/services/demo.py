"""The demo set-up behind `ranklab demo`: accounts, MT-Bench prompts and a sampling job (torch-free)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo_data import mtbench_turns
from app.models import Job, JobKind, JobStatus, PromptSource, RankingTask, Role, User, UserStatus
from app.services import guidelines as guideline_service
from app.services import jobs as job_service
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt

DEMO_ACCOUNTS = (
    ("demo-admin", Role.admin),
    ("demo-researcher", Role.researcher),
    ("demo-labeler1", Role.labeler),
    ("demo-labeler2", Role.labeler),
    ("demo-labeler3", Role.labeler),
)
STARTER_GUIDELINES = Path(__file__).resolve().parent.parent / "starter_guidelines.md"
"""The guidelines a fresh demo starts with (researchers edit them on the guidelines page)."""
DEMO_SAMPLING: dict[str, Any] = {
    "k": 4, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 96, "batch_size": 16, "followups": True,
}  # fmt: skip
"""Sampling params of the demo job: 4 answers per prompt, tasks appear every 16 prompts; each MT-Bench question's
second turn becomes a two-turn conversation (the first answer sampled by the SFT model) sampled in the same job."""


@dataclass
class DemoAccount:
    username: str
    role: Role
    password: str | None
    """The generated password; None when the account already existed (its password was printed then)."""


def publish_starter_guidelines(session: Session) -> bool:
    """Publish the starter guidelines (app/starter_guidelines.md) when none are published; returns whether it did."""
    if guideline_service.current_version(session) is not None:
        return False
    guideline_service.publish_guideline(session, body=STARTER_GUIDELINES.read_text(encoding="utf-8"), author=None)
    return True


def create_demo_accounts(session: Session) -> list[DemoAccount]:
    """Create the demo accounts that do not exist yet (labelers active), with random passwords; the labelers are told
    to read the guidelines, so the starter guidelines are published too when there are none."""
    publish_starter_guidelines(session)
    accounts = []
    for username, role in DEMO_ACCOUNTS:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            accounts.append(DemoAccount(username, role, None))
            continue
        password = secrets.token_urlsafe(12)
        status = UserStatus.active if role == Role.labeler else None
        user_service.create_user(session, username=username, password=password, role=role, status=status)
        accounts.append(DemoAccount(username, role, password))
    session.flush()
    return accounts


def import_mtbench_prompts(session: Session) -> tuple[list[int], int]:
    """MT-Bench's 80 first turns as prompts, each with its second turn as a follow-up (the demo's sampling job
    answers the first turn with the SFT model and makes the two-turn conversation a prompt of its own); returns
    (their ids in file order, how many were new)."""
    ids, created = [], 0
    for number, turns in enumerate(mtbench_turns(), start=1):
        metadata = {"dataset": "mt-bench", "question": number, "followups": list(turns[1:])}
        prompt, is_new = get_or_create_prompt(session, text=turns[0], source=PromptSource.import_, metadata=metadata)
        ids.append(prompt.id)
        created += is_new
    return ids, created


def queue_demo_sampling(session: Session, *, prompt_ids: list[int], max_attempts: int = 3) -> tuple[Job | None, bool]:
    """(job, queued now): a pending sampling job is reused; else one for the prompts without a task (None if none)."""
    pending = session.scalar(
        select(Job)
        .where(Job.kind == JobKind.sample, Job.status.in_([JobStatus.queued, JobStatus.running]))
        .order_by(Job.id)
    )
    if pending is not None:
        return pending, False
    with_tasks = set(session.scalars(select(RankingTask.prompt_id).where(RankingTask.prompt_id.in_(prompt_ids))))
    todo = [i for i in prompt_ids if i not in with_tasks]
    if not todo:
        return None, False
    job = job_service.enqueue_job(
        session, kind=JobKind.sample, params={"prompt_ids": todo, **DEMO_SAMPLING}, max_attempts=max_attempts
    )
    return job, True
