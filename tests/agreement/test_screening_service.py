import random

import pytest
from sqlalchemy import select

from app.errors import Conflict, InvalidInput
from app.models import AuditLog, Ranking, TaskKind, TaskStatus, UserStatus
from app.services import screening
from app.services.agreement import report
from tests.agreement.helpers import add_ranking, make_task, singletons

GOLD = singletons([0, 1, 2, 3])


def _screening_set(db, researcher, n):
    tasks = [make_task(db, kind=TaskKind.screening) for _ in range(n)]
    for task in tasks:
        add_ranking(db, task=task, user=researcher, order=GOLD)
    return tasks


def _settings(settings, **kw):
    return settings.model_copy(update=kw)


def test_gate_waits_for_the_whole_set_then_activates_a_careful_labeler(db, factory, settings):
    cfg = _settings(settings, screening_set_size=3)
    researcher, lab = factory.researcher(), factory.labeler(status=UserStatus.screening)
    tasks = _screening_set(db, researcher, 3)
    add_ranking(db, task=tasks[0], user=lab, order=GOLD)
    assert screening.evaluate_gate(db, settings=cfg, user=lab) is None
    assert screening.screening_tasks_remaining(db, settings=cfg, user=lab) == 2
    add_ranking(db, task=tasks[1], user=lab, order=singletons([1, 0, 2, 3]))
    ranking = add_ranking(db, task=tasks[2], user=lab, order=GOLD)
    screening.after_submission(db, settings=cfg, ranking=ranking)
    assert lab.status == UserStatus.active
    assert lab.screening_agreement == pytest.approx(17 / 18) and lab.screening_flag_agreement == 1.0
    log = db.scalars(select(AuditLog).where(AuditLog.target_user_id == lab.id, AuditLog.action == "screening.gate"))
    assert [e.data["to"] for e in log] == ["active"]


def test_gate_sends_low_agreement_or_bad_flags_to_review(db, factory, settings):
    cfg = _settings(settings, screening_set_size=2)
    researcher = factory.researcher()
    tasks = _screening_set(db, researcher, 2)
    sloppy, flagger = factory.labeler(status=UserStatus.screening), factory.labeler(status=UserStatus.screening)
    for task in tasks:
        add_ranking(db, task=task, user=sloppy, order=singletons([3, 2, 1, 0]))
        add_ranking(db, task=task, user=flagger, order=GOLD, flags={i: ["violent_content"] for i in range(4)})
    result = screening.evaluate_gate(db, settings=cfg, user=sloppy)
    assert result is not None and result.ranking_agreement == 0.0 and sloppy.status == UserStatus.pending_review
    result = screening.evaluate_gate(db, settings=cfg, user=flagger)
    assert result.ranking_agreement == 1.0 and result.flag_agreement == 0.0
    assert flagger.status == UserStatus.pending_review


def test_researcher_decisions_are_audited(db, factory):
    researcher = factory.researcher()
    lab = factory.labeler(status=UserStatus.pending_review)
    with pytest.raises(InvalidInput, match="reason"):
        screening.act_on_labeler(db, user=lab, actor=researcher, action="reject")
    screening.act_on_labeler(db, user=lab, actor=researcher, action="approve", reason="talked to them")
    assert lab.status == UserStatus.active
    with pytest.raises(Conflict):
        screening.act_on_labeler(db, user=lab, actor=researcher, action="resume")
    screening.act_on_labeler(db, user=lab, actor=researcher, action="pause", reason="holiday")
    assert lab.status == UserStatus.paused
    entries = db.scalars(select(AuditLog).where(AuditLog.target_user_id == lab.id).order_by(AuditLog.id)).all()
    assert [(e.action, e.reason, e.actor_id) for e in entries][-2:] == [
        ("labeler.approve", "talked to them", researcher.id),
        ("labeler.pause", "holiday", researcher.id),
    ]


def test_hidden_gold_rolling_window_flags_and_auto_pauses(db, factory, settings):
    cfg = _settings(settings, gold_window=2, auto_pause=True)
    researcher, lab = factory.researcher(), factory.labeler()
    orders = [GOLD, singletons([3, 2, 1, 0]), singletons([3, 2, 1, 0])]
    rolling = []
    for order in orders:
        task = make_task(db, kind=TaskKind.gold)
        add_ranking(db, task=task, user=researcher, order=GOLD)
        add_ranking(db, task=task, user=lab, order=order)
        rolling.append(screening.check_hidden_gold(db, settings=cfg, user=lab))
    assert rolling == [1.0, 0.5, 0.0]
    assert lab.gold_alert and lab.status == UserStatus.paused


def test_hidden_gold_share_is_seeded(settings):
    cfg = _settings(settings, hidden_gold_share=0.25)
    picks = [screening.wants_hidden_gold(rng, settings=cfg) for rng in [random.Random(7)] for _ in range(4000)]
    again = [screening.wants_hidden_gold(rng, settings=cfg) for rng in [random.Random(7)] for _ in range(4000)]
    assert picks == again and 0.22 < sum(picks) / len(picks) < 0.28


def test_adaptive_overlap_raises_low_agreement_task_once(db, factory, settings):
    cfg = _settings(settings, adaptive_overlap_max=3, adaptive_overlap_threshold=0.6)
    a, b = factory.labeler(), factory.labeler()
    task = make_task(db, overlap=2)
    task.status = TaskStatus.complete
    add_ranking(db, task=task, user=a, order=GOLD)
    ranking = add_ranking(db, task=task, user=b, order=singletons([3, 2, 1, 0]))
    screening.after_submission(db, settings=cfg, ranking=ranking)
    assert task.overlap == 3 and task.status == TaskStatus.open
    c = factory.labeler()
    ranking = add_ranking(db, task=task, user=c, order=singletons([2, 3, 1, 0]))
    assert not screening.adapt_overlap(db, settings=cfg, task=task)  # at the maximum
    agreeing = make_task(db, overlap=2)
    add_ranking(db, task=agreeing, user=a, order=GOLD)
    add_ranking(db, task=agreeing, user=b, order=GOLD)
    assert not screening.adapt_overlap(db, settings=cfg, task=agreeing) and agreeing.overlap == 2


def test_import_gold_ranking_and_promote(db, factory):
    researcher = factory.researcher()
    task = make_task(db, kind=TaskKind.screening, k=5)
    ids = [item.completion_id for item in task.items]
    ranking = screening.import_gold_ranking(db, task=task, researcher=researcher, gold_ranking=[[4], [0, 1], [2, 3]])
    assert ranking.by_researcher and ranking.buckets == [[ids[4]], [ids[0], ids[1]], [ids[2], ids[3]]]
    assert sorted((i.completion_id, i.rank) for i in ranking.items) == sorted(
        [(ids[4], 0), (ids[0], 1), (ids[1], 1), (ids[2], 2), (ids[3], 2)]
    )
    with pytest.raises(Conflict):
        screening.import_gold_ranking(db, task=task, researcher=researcher, gold_ranking=[[0, 1, 2, 3, 4]])
    for bad in ([[0], [1], [2], [3]], [[0, 0], [1, 2, 3, 4]], [[0, 1, 2, 3, 4], []]):
        with pytest.raises(InvalidInput, match="exactly once"):
            screening.import_gold_ranking(db, task=task, researcher=factory.researcher(), gold_ranking=bad)
    production = make_task(db)
    with pytest.raises(InvalidInput, match="gold"):
        screening.import_gold_ranking(db, task=production, researcher=researcher, gold_ranking=[[0, 1, 2, 3]])
    screening.promote_to_gold(db, task=production, actor=researcher)
    assert production.kind == TaskKind.gold
    assert db.scalar(select(Ranking.id).where(Ranking.task_id == production.id)) is None


def test_gold_and_screening_tasks_reach_labelers_only_once_a_researcher_ranked_them(db, factory, settings):
    from app.services.assignment import next_assignment

    cfg = _settings(settings, hidden_gold_share=1.0)
    researcher = factory.researcher()
    screening_task = make_task(db, kind=TaskKind.screening)
    gold_task = make_task(db, kind=TaskKind.gold)
    newcomer = factory.labeler(status=UserStatus.screening)
    active = factory.labeler()
    # no gold answer yet: nothing to score against, so neither is served to a labeler ...
    assert next_assignment(db, labeler=newcomer, settings=cfg) is None
    assert next_assignment(db, labeler=active, settings=cfg) is None
    # ... but researchers get them, to rank
    first = next_assignment(db, labeler=researcher, settings=cfg)
    assert first is not None and first.task_id in (screening_task.id, gold_task.id)
    for task in (screening_task, gold_task):
        add_ranking(db, task=task, user=researcher, order=GOLD)
    got_screening = next_assignment(db, labeler=newcomer, settings=cfg)
    got_gold = next_assignment(db, labeler=active, settings=cfg)
    assert got_screening is not None and got_screening.task_id == screening_task.id
    assert got_gold is not None and got_gold.task_id == gold_task.id


def test_a_labeler_who_ties_what_they_are_unsure_of_does_not_pass_for_free(db, factory, settings):
    # The case: against a strict gold of 9, [0,1,1,1,1,1,1,1,1] orders 8 pairs right and ties 28.
    # Old rule: 8/8 = 1.0 (passes the 0.75 cutoff); now (8 + 0.5 * 28) / 36 = 0.61, with 28/36 of the pairs tied.
    custom = settings.model_copy(update={"screening_set_size": 2})
    researcher, lab = factory.researcher(), factory.labeler(status=UserStatus.screening)
    for _ in range(2):
        task = make_task(db, kind=TaskKind.screening, k=9)
        add_ranking(db, task=task, user=researcher, order=singletons(range(9)))
        add_ranking(db, task=task, user=lab, order=[[0], list(range(1, 9))])
    result = screening.evaluate_gate(db, settings=custom, user=lab)
    assert result is not None and result.status == UserStatus.pending_review
    assert result.ranking_agreement == pytest.approx(22 / 36)
    row = next(r for r in report.labeler_rows(db, settings=custom) if r.user_id == lab.id)
    assert row.agreement_with_researchers == pytest.approx(22 / 36) == row.screening_agreement
    assert row.tied_share == pytest.approx(28 / 36)


def test_a_screening_task_is_not_promoted_to_gold(db, factory):
    task = make_task(db, kind=TaskKind.screening)
    with pytest.raises(Conflict, match="already a screening task"):
        screening.promote_to_gold(db, task=task, actor=factory.researcher())
