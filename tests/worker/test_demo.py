"""`ranklab demo`'s set-up steps: accounts once, MT-Bench prompts once, one pending sampling job."""

from __future__ import annotations

from sqlalchemy import select

from app.models import JobKind, Prompt, Role, User, UserStatus
from app.services import demo as demo_service
from app.services.users import authenticate


def test_demo_accounts_are_created_once_with_working_passwords(db):
    first = demo_service.create_demo_accounts(db)
    assert [a.username for a in first] == [name for name, _ in demo_service.DEMO_ACCOUNTS]
    assert all(a.password for a in first)
    labeler = next(a for a in first if a.role == Role.labeler)
    assert db.scalar(select(User).where(User.username == labeler.username)).status == UserStatus.active
    user = authenticate(
        db, username=labeler.username, password=labeler.password, client="test", max_failures=5, window_s=60
    )
    assert user.username == labeler.username
    again = demo_service.create_demo_accounts(db)
    assert all(a.password is None for a in again)


def test_mtbench_prompts_import_once_and_sampling_job_is_not_duplicated(db):
    ids, created = demo_service.import_mtbench_prompts(db)
    assert len(ids) == 80 and created == 80
    first = db.get(Prompt, ids[0])
    assert first.meta == {"dataset": "mt-bench", "question": 1} and "Hawaii" in first.text
    assert demo_service.import_mtbench_prompts(db) == (ids, 0)
    job, is_new = demo_service.queue_demo_sampling(db, prompt_ids=ids)
    assert is_new and job.kind == JobKind.sample and job.params["prompt_ids"] == ids and job.params["k"] == 4
    again, is_new = demo_service.queue_demo_sampling(db, prompt_ids=ids)
    assert again.id == job.id and not is_new
