from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.metrics import ranking_alpha
from app.models import TaskKind
from app.services.agreement import report
from tests.agreement.helpers import add_ranking, make_task, reference_counts, singletons


def _row(rows, user):
    return next(r for r in rows if r.user_id == user.id)


def test_labeler_agreement_with_researchers_pools_pairs(db, factory, settings):
    r1, r2, lab = factory.researcher(), factory.researcher(), factory.labeler()
    gold = [[0], [1], [2], [3]]
    answers = [singletons([1, 0, 2, 3]), [[0, 1], [2], [3]], singletons([3, 2, 1, 0])]
    expected = [0, 0]
    for answer in answers:
        task = make_task(db, kind=TaskKind.gold)
        add_ranking(db, task=task, user=r1, order=gold)
        add_ranking(db, task=task, user=r2, order=singletons([0, 1, 3, 2]))
        add_ranking(db, task=task, user=lab, order=answer)
        for g in (gold, singletons([0, 1, 3, 2])):
            n, d = reference_counts(answer, g)
            expected[0] += n
            expected[1] += d
    row = _row(report.labeler_rows(db, settings=settings), lab)
    assert row.n_gold == 3
    assert row.agreement_with_researchers == pytest.approx(expected[0] / expected[1])
    assert row.ci_low <= row.agreement_with_researchers <= row.ci_high
    assert row.agreement_with_labelers is None and row.n_overlap == 0


def test_inter_labeler_agreement_per_task_and_alpha(db, factory, settings):
    a, b, c = factory.labeler(), factory.labeler(), factory.labeler()
    task = make_task(db, k=5, overlap=3)
    orders = {a: singletons([0, 1, 2, 3, 4]), b: singletons([0, 1, 2, 4, 3]), c: singletons([4, 3, 2, 1, 0])}
    for user, order in orders.items():
        add_ranking(db, task=task, user=user, order=order)
    counts = [reference_counts(orders[x], orders[y], peers=True) for x, y in ((a, b), (a, c), (b, c))]
    rows = report.task_rows(db)
    row = next(t for t in rows if t.task_id == task.id)
    assert row.n_labelers == 3 and row.pairs == sum(d for _, d in counts)
    assert row.agreement == pytest.approx(sum(n for n, _ in counts) / sum(d for _, d in counts))
    assert row.alpha is not None and row.alpha < 0.5
    ranks = [np.argsort([i for bucket in order for i in bucket]) for order in orders.values()]  # position -> rank
    assert row.alpha == pytest.approx(ranking_alpha(np.array(ranks, dtype=float)))
    labeler_a = _row(report.labeler_rows(db, settings=settings), a)
    (n_ab, d_ab), (n_ac, d_ac) = counts[0], counts[1]
    assert labeler_a.agreement_with_labelers == pytest.approx((n_ab + n_ac) / (d_ab + d_ac))
    assert labeler_a.n_overlap == 1


def test_flags_speed_and_position_bias(db, factory, settings):
    researcher, lab = factory.researcher(), factory.labeler()
    for i in range(4):
        task = make_task(db, kind=TaskKind.screening)
        add_ranking(db, task=task, user=researcher, order=singletons([0, 1, 2, 3]), flags={2: ["hallucination"]})
        lab_flags = {2: ["hallucination"]} if i < 3 else {1: ["hallucination"]}
        # the first-shown completion (position 3 on odd tasks, 0 on even ones) is ranked best on even tasks
        display = [0, 1, 2, 3] if i % 2 == 0 else [3, 2, 1, 0]
        add_ranking(
            db,
            task=task,
            user=lab,
            order=singletons([0, 1, 2, 3]),
            flags=lab_flags,
            seconds=10 * (i + 1),
            display=display,
        )
    row = _row(report.labeler_rows(db, settings=settings), lab)
    assert row.flag_agreement == pytest.approx(14 / 16)  # two completions differ on the last task
    # each flagged 4 of 16: p_o = 14/16, p_e = (4/16)^2 + (12/16)^2 = 10/16
    assert row.flag_kappa["hallucination"] == pytest.approx((14 - 10) / (16 - 10))
    assert row.flag_kappa["sexual_content"] == 1.0
    assert row.flag_percent_agreement["hallucination"] == pytest.approx(14 / 16)
    assert row.flag_percent_agreement["sexual_content"] == 1.0  # neither ever set it
    assert row.median_seconds == pytest.approx(25.0)
    assert row.position_bias == pytest.approx(0.5) and row.position_chance == pytest.approx(0.25)
    assert row.n_position == 4


def test_matrix_and_overview_series(db, factory):
    r1, r2, lab = factory.researcher(), factory.researcher(), factory.labeler()
    day1 = datetime(2026, 1, 5, 12, tzinfo=UTC)
    task = make_task(db, kind=TaskKind.gold)
    add_ranking(db, task=task, user=r1, order=singletons([0, 1, 2, 3]), at=day1)
    add_ranking(db, task=task, user=r2, order=singletons([1, 0, 2, 3]), at=day1)
    add_ranking(db, task=task, user=lab, order=singletons([0, 1, 3, 2]), at=day1 + timedelta(days=1))
    m = report.matrix(db)
    col = {r.user_id: i for i, r in enumerate(m.researchers)}
    rows = {row.user_id: row for row in m.rows}
    assert rows[lab.id].cells[col[r1.id]].agreement == pytest.approx(5 / 6)
    assert rows[lab.id].cells[col[r2.id]].agreement == pytest.approx(4 / 6)
    assert rows[r1.id].cells[col[r2.id]].agreement == pytest.approx(5 / 6)
    assert rows[r1.id].cells[col[r1.id]].n == 0
    ov = report.overview(db)
    series = {d.day: d for d in ov.series}
    assert series[day1.date()].rankings >= 2
    assert series[(day1 + timedelta(days=1)).date()].agreement_with_researchers == pytest.approx(9 / 12)
    assert ov.researcher_agreement.value is not None


def test_task_alpha_leaves_researchers_out_and_needs_two_labelers(db, factory, settings):
    researcher, a, b = factory.researcher(), factory.labeler(), factory.labeler()
    shared = make_task(db, k=4, kind=TaskKind.gold)
    add_ranking(db, task=shared, user=researcher, order=singletons([3, 2, 1, 0]))
    add_ranking(db, task=shared, user=a, order=singletons([0, 1, 2, 3]))
    add_ranking(db, task=shared, user=b, order=[[0, 1], [2], [3]])
    lonely = make_task(db, k=4, kind=TaskKind.gold)
    add_ranking(db, task=lonely, user=researcher, order=singletons([0, 1, 2, 3]))
    add_ranking(db, task=lonely, user=a, order=singletons([0, 1, 2, 3]))
    alphas = {t.task_id: t.alpha for t in report.task_rows(db, min_labelers=1)}
    # ranks by position: a = 0,1,2,3; b = 0,0,1,2 (a tie in the first bucket); the researcher is not a labeler
    assert alphas[shared.id] == pytest.approx(ranking_alpha(np.array([[0, 1, 2, 3], [0, 0, 1, 2]], dtype=float)))
    assert alphas[lonely.id] is None
