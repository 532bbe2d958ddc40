"""The job-kind registry: web and worker know the same kinds, handlers get parsed params, and a model a handler
produces is registered in the transaction that finishes its job (never twice, never for a lost job)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import typing
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Job, JobKind, JobStatus, ModelKind, ModelVersion, utcnow
from app.schemas.jobs import JOB_KINDS, ExportParams
from app.services import jobs as job_service
from app.services import model_registry
from trainer.common.context import JobContext, NewModelVersion
from trainer.jobs import discover_handlers
from trainer.worker import WorkerConfig, work


def test_web_and_worker_know_the_same_kinds():
    assert set(JOB_KINDS) == set(discover_handlers())


def test_each_handler_takes_its_kinds_params_model():
    for kind, run in discover_handlers().items():
        assert typing.get_type_hints(run)["params"] is JOB_KINDS[kind].params_model, kind


def test_discovery_and_the_command_line_stay_torch_free():
    code = (
        "import sys; import trainer.worker, trainer.cli; from trainer.jobs import discover_handlers; "
        "discover_handlers(); trainer.cli.register_trainer_commands(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')]; assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def _queue(sessions: sessionmaker[Session], **params) -> int:
    with sessions.begin() as session:
        return job_service.enqueue_job(session, kind=JobKind.export, params=params).id


def _models(sessions: sessionmaker[Session]) -> list[ModelVersion]:
    with sessions() as session:
        return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def _job(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _once(settings, sessions, handler, stop: threading.Event | None = None) -> int:
    cfg = WorkerConfig.from_settings(settings, once=True, run_scheduler=False)
    return work(cfg, sessions, settings, handlers={JobKind.export: handler}, stop=stop)


def fake_model_dir(path: Path) -> Path:
    """Enough of a Hugging Face folder for the registry's check (config, weights, tokenizer)."""
    path.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (path / name).write_text("{}")
    return path


def test_handler_gets_its_params_parsed_with_defaults(sessions, worker_settings):
    seen: list[ExportParams] = []
    _queue(sessions, format="rankings")
    _once(worker_settings, sessions, lambda ctx, params: seen.append(params))
    assert seen == [ExportParams(format="rankings")]


def test_a_produced_model_is_registered_with_the_finished_job(sessions, worker_settings, tmp_path):
    folder = fake_model_dir(tmp_path / "rm")

    def handler(ctx: JobContext, params: ExportParams) -> NewModelVersion:
        return NewModelVersion(ModelKind.reward, "rm-1", folder, metrics={"accuracy": 0.7})

    job_id = _queue(sessions)
    _once(worker_settings, sessions, handler)
    job, [model] = _job(sessions, job_id), _models(sessions)
    assert job.status == JobStatus.succeeded and job.output_model_id == model.id
    assert (model.kind, model.name, model.job_id) == (ModelKind.reward, "rm-1", job_id)
    assert model.metrics["accuracy"] == 0.7 and model.path == str(folder.resolve())
    assert set(model.metrics) <= {"accuracy", "peak_rss_mib"}  # the worker adds the attempt's peak memory, nothing else
    assert model.metrics.get("peak_rss_mib", 1) > 0


def test_a_lost_job_registers_nothing_and_its_retry_exactly_one(sessions, worker_settings, tmp_path):
    folder = fake_model_dir(tmp_path / "rm")

    stop = threading.Event()

    def taken_away(ctx: JobContext, params: ExportParams) -> NewModelVersion:
        with ctx.transaction() as session:  # a stale-heartbeat requeue happens while the handler finishes
            job_service.requeue_stale(session, stale_after_s=0, now=utcnow() + timedelta(seconds=5))
        stop.set()  # this worker should not claim the requeued job again
        return NewModelVersion(ModelKind.reward, "rm", folder)

    job_id = _queue(sessions)
    _once(worker_settings, sessions, taken_away, stop)
    assert _job(sessions, job_id).status == JobStatus.queued and _models(sessions) == []
    _once(worker_settings, sessions, lambda ctx, params: NewModelVersion(ModelKind.reward, "rm", folder))
    job, models = _job(sessions, job_id), _models(sessions)
    assert job.status == JobStatus.succeeded and job.attempts == 2
    assert [m.id for m in models] == [job.output_model_id] and models[0].job_id == job_id


def test_a_crash_in_the_finishing_transaction_registers_nothing(sessions, worker_settings, tmp_path, monkeypatch):
    folder = fake_model_dir(tmp_path / "rm")

    def handler(ctx: JobContext, params: ExportParams) -> NewModelVersion:
        return NewModelVersion(ModelKind.policy, "ppo", folder)

    def crash(*args, **kwargs):
        raise RuntimeError("the machine died mid-commit")

    job_id = _queue(sessions)
    with monkeypatch.context() as patch:
        patch.setattr(job_service, "finish_job", crash)
        with pytest.raises(RuntimeError, match="mid-commit"):
            _once(worker_settings, sessions, handler)
    assert _job(sessions, job_id).status == JobStatus.running and _models(sessions) == []
    with sessions.begin() as session:  # the crashed worker's heartbeat goes stale
        job_service.requeue_stale(session, stale_after_s=0, now=utcnow() + timedelta(seconds=5))
    _once(worker_settings, sessions, handler)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1
    assert _job(sessions, job_id).output_model_id == _models(sessions)[0].id


def test_an_incomplete_model_folder_fails_the_job(sessions, worker_settings, tmp_path):
    (tmp_path / "half").mkdir()
    job_id = _queue(sessions)
    _once(worker_settings, sessions, lambda ctx, params: NewModelVersion(ModelKind.reward, "rm", tmp_path / "half"))
    job = _job(sessions, job_id)
    assert job.status == JobStatus.failed and job.output_model_id is None and _models(sessions) == []
    assert job.error is not None and job.error.startswith("could not register the model:")
    assert "no config.json" in job.error


def test_find_or_register_registers_a_folder_once_when_two_ask_at_once(sessions, tmp_path):
    """The default SFT model (registered by sampling jobs and `ranklab demo`) gets one version, however many ask."""
    folder = fake_model_dir(tmp_path / "sft")
    first_registered, release = threading.Event(), threading.Event()
    ids: dict[str, int] = {}

    def register(name: str) -> None:
        if name == "second":
            first_registered.wait(10)
        with sessions.begin() as session:
            ids[name] = model_registry.find_or_register(session, kind=ModelKind.sft, name="sft", path=folder).id
            if name == "first":  # hold the transaction open while the second one asks
                first_registered.set()
                release.wait(10)

    threads = [threading.Thread(target=register, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    assert first_registered.wait(10)
    time.sleep(0.3)  # the second is now waiting for the first's transaction (lock on PostgreSQL, BEGIN IMMEDIATE)
    release.set()
    for thread in threads:
        thread.join(20)
    assert ids["first"] == ids["second"] and [m.id for m in _models(sessions)] == [ids["first"]]
