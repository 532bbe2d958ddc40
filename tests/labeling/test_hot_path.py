"""The labeling hot path: the throttled lease sweep stays correct, and next/submit stay few statements."""

from datetime import timedelta

import pytest
from sqlalchemy import event

from app.deps import settings_dep
from app.errors import Gone
from app.models import Assignment, AssignmentStatus, Prompt, RankingTask, utcnow
from app.services import assignment as assignment_service
from app.services import lease_sweep
from app.services.rankings import RankingSubmission, submit_ranking
from tests.factories import make_task, token_headers

NEXT = "/api/v1/labeling/next"


@pytest.fixture
def no_sweep_for_a_day(monkeypatch):
    """As if this process had just swept and will not sweep again on its own for a day."""
    t0 = utcnow()
    monkeypatch.setattr(lease_sweep, "SWEEP_EVERY", timedelta(days=1))
    monkeypatch.setattr(lease_sweep, "_last_sweep_at", t0)
    return t0


def test_unswept_expired_lease_is_never_served_as_live(db, factory, settings, no_sweep_for_a_day):
    make_task(db)
    make_task(db)
    labeler = factory.labeler()
    first = assignment_service.next_assignment(db, labeler=labeler, settings=settings, now=no_sweep_for_a_day)
    later = no_sweep_for_a_day + timedelta(minutes=settings.lease_minutes, seconds=1)
    sub = RankingSubmission(ranking=[first.display_order], idempotency_key="late")
    with pytest.raises(Gone):
        submit_ranking(db, labeler=labeler, assignment_id=first.id, submission=sub, settings=settings, now=later)
    db.refresh(first)
    assert first.status == AssignmentStatus.active  # not swept yet, but not live either


def test_a_lapsed_lease_comes_back_to_its_labeler_while_its_task_is_free(db, factory, settings, no_sweep_for_a_day):
    """Issue 21: the draft of a lapsed task is in the labeler's browser, so `next` gives that task back (same
    assignment, same display order, a fresh lease) instead of a new one, whether or not a sweep saw it lapse."""
    make_task(db)
    make_task(db)
    labeler = factory.labeler()
    first = assignment_service.next_assignment(db, labeler=labeler, settings=settings, now=no_sweep_for_a_day)
    later = no_sweep_for_a_day + timedelta(minutes=settings.lease_minutes, seconds=1)
    again = assignment_service.next_assignment(db, labeler=labeler, settings=settings, now=later)
    assert again is not None and again.id == first.id and again.expires_at > later
    task = db.get(RankingTask, first.task_id)
    assert task.slots_taken == 1  # the unswept lease kept its slot: nothing counted twice
    # swept (its slot given back), then taken back: the slot is taken again
    after = later + timedelta(minutes=settings.lease_minutes, seconds=1)
    lease_sweep.sweep_expired(db, now=after)
    db.refresh(task)
    assert task.slots_taken == 0
    back = assignment_service.next_assignment(db, labeler=labeler, settings=settings, now=after)
    assert back is not None and back.id == first.id and back.status == AssignmentStatus.active
    db.refresh(task)
    assert task.slots_taken == 1
    sub = RankingSubmission(ranking=[back.display_order], idempotency_key="back")
    submit_ranking(db, labeler=labeler, assignment_id=back.id, submission=sub, settings=settings, now=after)


def test_a_lapsed_task_another_labeler_took_is_not_given_back(db, factory, settings, no_sweep_for_a_day):
    make_task(db)
    make_task(db)
    labeler, other = factory.labeler(), factory.labeler()
    first = assignment_service.next_assignment(db, labeler=labeler, settings=settings, now=no_sweep_for_a_day)
    later = no_sweep_for_a_day + timedelta(minutes=settings.lease_minutes, seconds=1)
    lease_sweep.sweep_expired(db, now=later)
    taken = assignment_service.next_assignment(db, labeler=other, settings=settings, now=later)
    assert taken is not None and taken.task_id == first.task_id  # the newest task, free again, went to the other
    second = assignment_service.next_assignment(db, labeler=labeler, settings=settings, now=later)
    assert second is not None and second.task_id != first.task_id


def test_empty_pool_sweeps_before_answering_nothing(db, factory, settings, no_sweep_for_a_day):
    task = make_task(db)
    first = assignment_service.next_assignment(db, labeler=factory.labeler(), settings=settings, now=no_sweep_for_a_day)
    later = no_sweep_for_a_day + timedelta(minutes=settings.lease_minutes, seconds=1)
    second = assignment_service.next_assignment(db, labeler=factory.labeler(), settings=settings, now=later)
    assert first is not None and second is not None and second.task_id == task.id
    db.refresh(first)
    db.refresh(task)
    assert first.status == AssignmentStatus.expired and task.slots_taken == 1


def test_next_view_matches_the_task(db, factory, settings):
    task = make_task(db, k=5)
    got = assignment_service.next_assignment_view(db, labeler=factory.labeler(), settings=settings)
    assert got is not None
    assignment, view = got
    assert view.prompt_id == task.prompt_id and view.prompt_text == db.get(Prompt, task.prompt_id).text
    assert list(view.completions) == [i.completion_id for i in task.items]
    assert sorted(assignment.display_order) == sorted(view.completions)


def test_next_and_submit_statement_counts(app, client, db, factory, settings, no_sweep_for_a_day):
    app.dependency_overrides[settings_dep] = lambda: settings.model_copy(update={"hidden_gold_share": 0.0})
    make_task(db)
    headers = token_headers(client, factory.labeler())
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            statements.append(statement)

    event.listen(db.get_bind(), "before_cursor_execute", count)
    try:
        body = client.get(NEXT, headers=headers).json()
        # user, labeler lock, live lease, take (eval or else production, one statement), prompt+completions, insert
        assert len(statements) <= 6, statements
        statements.clear()
        ids = [c["id"] for c in body["completions"]]
        url = f"/api/v1/labeling/assignments/{body['assignment_id']}/ranking"
        resp = client.post(url, json={"ranking": [ids], "idempotency_key": "k"}, headers=headers)
        assert resp.status_code == 201 and resp.json()["submitted_today"] == 1
        # user, assignment lock, replay check, task lock (+ids, guideline), assignment, ranking, items, close, today;
        # then the agreement aggregates' refresh of the task before commit (agreement.aggregates.refresh_tasks): old
        # unit and task rows, the task's rankings (3) and flags, delete + insert units and task row (4), the users'
        # rows, their units, their figures, the day and the matrix cells
        assert len(statements) <= 9 + 14, statements
    finally:
        event.remove(db.get_bind(), "before_cursor_execute", count)
    assert db.get(RankingTask, db.get(Assignment, body["assignment_id"]).task_id).status.value == "complete"
