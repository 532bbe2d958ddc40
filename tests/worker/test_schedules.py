"""Schedules: cron periods, data triggers, the scheduler lease, and two workers sharing one queue."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.errors import InvalidInput
from app.models import Job, JobKind, JobStatus, Prompt, Ranking, Split
from app.services import schedules as schedule_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from trainer.worker import WorkerConfig, work

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
_keys = itertools.count()


def test_cron_schedule_fires_once_per_period(db):
    schedule = schedule_service.create_schedule(
        db, name="five-min", kind=JobKind.export, params={}, cron="*/5 * * * *", now=T0
    )
    assert schedule.next_run_at == T0 + timedelta(minutes=5)
    assert schedule_service.run_due_schedules(db, now=T0 + timedelta(minutes=4)) == []
    fired = schedule_service.run_due_schedules(db, now=T0 + timedelta(minutes=5, seconds=3))
    assert [j.schedule_id for j in fired] == [schedule.id] and schedule.last_job_id == fired[0].id
    assert schedule_service.run_due_schedules(db, now=T0 + timedelta(minutes=9)) == []
    fired[0].status = JobStatus.succeeded  # a schedule's next job waits for its previous one (test_schedule_limits)
    assert len(schedule_service.run_due_schedules(db, now=T0 + timedelta(minutes=10))) == 1
    assert schedule.next_run_at == T0 + timedelta(minutes=15)


def test_disabled_schedule_does_not_fire(db):
    schedule_service.create_schedule(
        db, name="off", kind=JobKind.export, params={}, cron="* * * * *", enabled=False, now=T0
    )
    assert schedule_service.run_due_schedules(db, now=T0 + timedelta(hours=1)) == []


def test_bad_cron_and_missing_trigger_are_refused(db):
    with pytest.raises(InvalidInput, match="not a valid cron"):
        schedule_service.create_schedule(db, name="bad", kind=JobKind.export, params={}, cron="61 * * * *")
    with pytest.raises(InvalidInput, match="needs a cron expression or min_new_rankings"):
        schedule_service.create_schedule(db, name="none", kind=JobKind.export, params={})
    with pytest.raises(InvalidInput, match=r"params\.k"):
        schedule_service.create_schedule(
            db, name="p", kind=JobKind.sample, params={"n_unlabeled": 5, "k": 3}, min_new_rankings=5
        )


def _add_rankings(db, factory, n: int) -> None:
    labeler = factory.labeler()
    prompt, _ = get_or_create_prompt(db, text=f"prompt for rankings {n} {labeler.id}", split=Split.train)
    task = create_task(db, prompt=prompt, completions=[NewCompletion(text=f"answer {i}") for i in range(4)])
    for _ in range(n):
        db.add(Ranking(task_id=task.id, labeler_id=labeler.id, idempotency_key=f"k{next(_keys)}"))
    db.flush()


def test_data_trigger_waits_for_enough_new_rankings(db, factory):
    schedule_service.create_schedule(db, name="export-on-data", kind=JobKind.export, params={}, min_new_rankings=3)
    _add_rankings(db, factory, 2)
    assert schedule_service.run_due_schedules(db) == []
    _add_rankings(db, factory, 1)
    fired = schedule_service.run_due_schedules(db)
    assert len(fired) == 1 and fired[0].kind == JobKind.export
    assert schedule_service.run_due_schedules(db) == []  # one is queued, and nothing new since it


def test_scheduler_lease_has_one_holder_at_a_time(db):
    lease = schedule_service.SCHEDULER_LEASE
    assert schedule_service.acquire_lease(db, name=lease, holder="a", ttl_s=30, now=T0)
    assert not schedule_service.acquire_lease(db, name=lease, holder="b", ttl_s=30, now=T0 + timedelta(seconds=10))
    assert schedule_service.acquire_lease(db, name=lease, holder="a", ttl_s=30, now=T0 + timedelta(seconds=20))
    assert not schedule_service.acquire_lease(db, name=lease, holder="b", ttl_s=30, now=T0 + timedelta(seconds=49))
    assert schedule_service.acquire_lease(db, name=lease, holder="b", ttl_s=30, now=T0 + timedelta(seconds=51))


class FrozenClock:
    """A clock the test moves by hand: nothing becomes due because a real minute boundary passed."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _start_two_workers(sessions, settings, stop: threading.Event, clock: FrozenClock) -> list[threading.Thread]:
    threads = [
        threading.Thread(
            target=work,
            args=(WorkerConfig.from_settings(settings, worker_id=f"w{i}", clock=clock), sessions, settings),
            kwargs={"handlers": {JobKind.export: lambda ctx, params: None}, "stop": stop},
        )
        for i in range(2)
    ]
    for t in threads:
        t.start()
    return threads


def _scheduled_jobs(sessions, schedule_id: int) -> list[Job]:
    with sessions() as session:
        return list(session.scalars(select(Job).where(Job.schedule_id == schedule_id)))


def test_schedule_fires_once_per_period_with_two_workers(sessions, worker_settings):
    clock = FrozenClock(T0 + timedelta(seconds=30))
    with sessions.begin() as session:
        schedule_id = schedule_service.create_schedule(
            session, name="every-minute", kind=JobKind.export, params={}, cron="* * * * *", now=clock.now
        ).id
    stop = threading.Event()
    threads = _start_two_workers(sessions, worker_settings, stop, clock)
    try:
        for period in (1, 2):
            clock.now += timedelta(minutes=1)  # the period's time has come, and no other
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                jobs = _scheduled_jobs(sessions, schedule_id)
                if len(jobs) >= period and all(j.status.value == "succeeded" for j in jobs):
                    break
                time.sleep(0.05)
            time.sleep(10 * worker_settings.worker_poll_s)  # both workers get more chances to fire it again
            jobs = _scheduled_jobs(sessions, schedule_id)
            assert len(jobs) == period, f"period {period}: {len(jobs)} jobs"
            assert all(j.status.value == "succeeded" for j in jobs)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def test_schedule_with_stale_params_skips_its_period_without_blocking_others(db):

    prompt, _ = get_or_create_prompt(db, text="soon deleted", split=Split.train)
    broken = schedule_service.create_schedule(
        db, name="broken", kind=JobKind.sample, params={"prompt_ids": [prompt.id]}, cron="* * * * *", now=T0
    )
    fine = schedule_service.create_schedule(db, name="fine", kind=JobKind.export, params={}, cron="* * * * *", now=T0)
    db.delete(db.get(Prompt, prompt.id))
    db.flush()
    fired = schedule_service.run_due_schedules(db, now=T0 + timedelta(minutes=1))
    assert [j.schedule_id for j in fired] == [fine.id]
    assert broken.next_run_at == T0 + timedelta(minutes=2) and broken.last_job_id is None


def test_reward_model_retrains_every_n_new_rankings(db, factory):
    from app.models import ModelKind, ModelVersion

    db.add(ModelVersion(kind=ModelKind.sft, name="sft", path="/models/sft"))
    db.flush()
    schedule_service.create_schedule(
        db, name="rm-every-3", kind=JobKind.train_reward, params={"epochs": 2}, min_new_rankings=3
    )
    _add_rankings(db, factory, 2)
    assert schedule_service.run_due_schedules(db) == []
    _add_rankings(db, factory, 1)
    fired = schedule_service.run_due_schedules(db)
    assert [(j.kind, j.params["epochs"]) for j in fired] == [(JobKind.train_reward, 2)]
    assert schedule_service.run_due_schedules(db) == []  # queued, so not again until it ran and 3 more arrive
