"""Issue 22, item 6: `ranklab storage` says what uses the disk and what can go; `--apply` removes it, audited.

Runs on the suite's database (SQLite or PostgreSQL); the data folder is a temporary one.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import AuditLog, Job, JobKind, JobStatus, ModelKind, ModelVersion, Round, RoundStatus, Schedule
from app.services import storage as storage_service
from tests.cli import ranklab
from tests.factories import Factory, browser_login, token_headers
from tests.pg import fresh_database


def _file(path: Path, size: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def _job(db: Session, status: JobStatus, kind: JobKind = JobKind.train_reward) -> int:
    job = Job(kind=kind, params={}, status=status)
    db.add(job)
    db.flush()
    return job.id


def _version(db: Session, kind: ModelKind, folder: Path, **extra: object) -> ModelVersion:
    _file(folder / "model.safetensors", 2000)
    _file(folder / "config.json", 10)
    model = ModelVersion(kind=kind, name=folder.name, path=str(folder), **extra)
    db.add(model)
    db.flush()
    return model


@pytest.fixture
def scene(db: Session, tmp_path: Path) -> dict[str, object]:
    """A data folder with something of every kind: some may go, the rest must stay."""
    data = tmp_path / "data"
    done, failed, running = (_job(db, s) for s in (JobStatus.succeeded, JobStatus.failed, JobStatus.running))
    checkpoints = data / "checkpoints"
    go = {
        _file(checkpoints / f"job-{done}-reward" / "state.pt").parent,
        _file(checkpoints / f"job-{failed}-policy-prompts.json"),
        _file(checkpoints / "job-2000000000-reward-data.json"),  # its job was deleted
        (data / "models" / f"reward-job{failed}-a1"),
    }
    _file(data / "models" / f"reward-job{failed}-a1" / "model.safetensors")
    stay = {
        _file(checkpoints / f"job-{running}-reward" / "state.pt").parent,
        _file(data / "models" / f"policy-job{running}-a1" / "model.safetensors").parent,
        _file(data / "models" / "hand-made" / "model.safetensors").parent,
    }
    sft = _version(db, ModelKind.sft, data / "models" / "sft")
    rewards = {}
    for name in ("ra", "rb", "r1", "r2", "r3"):
        rewards[name] = _version(db, ModelKind.reward, data / "models" / name, parent_id=sft.id)
    rewards["outside"] = _version(db, ModelKind.reward, tmp_path / "elsewhere" / "rm", parent_id=sft.id)
    for name in ("r4", "r5"):
        rewards[name] = _version(db, ModelKind.reward, data / "models" / name, parent_id=sft.id)
    _version(
        db, ModelKind.policy, data / "models" / "p1", parent_id=sft.id, metrics={"reward_version": rewards["r1"].id}
    )
    db.add(
        Schedule(
            name="ppo-nightly", kind=JobKind.train_policy, params={"reward_version": rewards["r2"].id}, cron="0 3 * * *"
        )
    )
    db.add(Round(status=RoundStatus.succeeded, reward_model_id=rewards["r3"].id))
    for job_id, age in ((901, 4), (902, 3), (903, 2), (904, 1)):
        path = _file(data / "exports" / f"job-{job_id}-pairs.jsonl")
        stamp = datetime.now(UTC).timestamp() - age * 3600
        os.utime(path, (stamp, stamp))
    go |= {data / "exports" / "job-901-pairs.jsonl", data / "exports" / "job-902-pairs.jsonl"}
    go |= {Path(rewards["ra"].path), Path(rewards["rb"].path)}
    stay |= {Path(m.path) for name, m in rewards.items() if name not in ("ra", "rb")} | {Path(sft.path)}
    db.flush()
    return {"data": data, "go": go, "stay": stay, "pruned": {rewards["ra"].id, rewards["rb"].id}}


def _report(db: Session, data: Path) -> storage_service.StorageReport:
    return storage_service.storage_report(db, data_dir=data, keep_versions=2, export_keep=2, export_max_age_days=30)


def test_the_report_plans_exactly_what_may_go(db: Session, scene: dict) -> None:
    report = _report(db, scene["data"])
    assert {r.path for r in report.removals} == scene["go"]
    assert not {r.path for r in report.removals} & scene["stay"]
    by_path = {r.path: r for r in report.removals}
    assert all(r.bytes > 0 and r.reason for r in report.removals)
    assert {r.model_version_id for r in report.removals if r.what == "model files"} == scene["pruned"]
    assert "has failed" in by_path[next(p for p in scene["go"] if "policy-prompts" in p.name)].reason
    usage = {u.category: u for u in report.usage}
    assert usage["checkpoints"].entries == 4 and usage["exports"].bytes == 4000
    assert usage["registered models"].entries == 9  # sft, 7 rewards inside the folder, p1
    assert report.free_bytes > 0 and report.disk_bytes >= report.free_bytes
    for path in scene["go"] | scene["stay"]:
        assert path.exists(), path  # a report removes nothing


def test_apply_removes_the_plan_and_audits_each_removal(db: Session, scene: dict, factory: Factory) -> None:
    admin = factory.admin()
    report = _report(db, scene["data"])
    freed = storage_service.apply_removals(db, removals=report.removals, actor=admin)
    assert freed == report.removable_bytes > 0
    assert not any(p.exists() for p in scene["go"])
    assert all(p.exists() for p in scene["stay"])
    audit = list(db.scalars(select(AuditLog).where(AuditLog.action == "storage.remove")))
    assert len(audit) == len(report.removals) and all(a.actor_id == admin.id for a in audit)
    assert {a.data["model_version_id"] for a in audit if "model_version_id" in a.data} == scene["pruned"]
    for version_id in scene["pruned"]:
        model = db.get(ModelVersion, version_id)
        assert model is not None and storage_service.files_removed(model)  # the row stays, saying so
    assert _report(db, scene["data"]).removals == []
    from app.services import jobs as job_service

    with pytest.raises(InvalidInput, match=r"files of model version \d+ were removed .*ranklab models add"):
        job_service.enqueue_job(db, kind=JobKind.train_policy, params={"reward_version": min(scene["pruned"])})


def test_the_api_and_the_jobs_page_show_the_storage(client: TestClient, factory: Factory) -> None:
    labeler = token_headers(client, factory.labeler())
    assert client.get("/api/v1/storage", headers=labeler).status_code == 403
    researcher = factory.researcher()
    body = client.get("/api/v1/storage", headers=token_headers(client, researcher)).json()
    assert body["free_bytes"] > 0 and {u["category"] for u in body["usage"]} >= {"checkpoints", "exports"}
    browser_login(client, researcher)
    page = client.get("/jobs").text
    assert 'id="storage"' in page and "free</strong>" in page


def test_the_command_lists_then_applies(tmp_path: Path) -> None:
    from app.db import make_engine

    with fresh_database(tmp_path, "rl_storage") as url:
        engine = make_engine(url)
        with Session(engine) as session, session.begin():
            job = Job(kind=JobKind.train_reward, params={}, status=JobStatus.cancelled)
            session.add(job)
            session.flush()
            job_id = job.id
        engine.dispose()
        data = tmp_path / "data"
        checkpoint = _file(data / "checkpoints" / f"job-{job_id}-reward" / "state.pt", 5000).parent
        env = {**os.environ, "RANKLAB_DATABASE_URL": url, "RANKLAB_DATA_DIR": str(data)}
        listed = ranklab(["storage"], env)
        assert listed.returncode == 0, listed.stderr
        assert "Would remove" in listed.stdout and f"job {job_id} has cancelled" in listed.stdout
        assert checkpoint.exists()
        applied = ranklab(["storage", "--apply"], env)
        assert applied.returncode == 0 and "Removed" in applied.stdout, applied.stderr
        assert not checkpoint.exists()
        after = json.loads(ranklab(["storage", "--json"], env).stdout)
        assert after["removals"] == [] and after["free_bytes"] > 0
        engine = make_engine(url)
        with Session(engine) as session:
            entries = session.scalar(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "storage.remove")
            )
        engine.dispose()
        assert entries == 1
