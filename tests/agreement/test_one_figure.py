"""One figure per labeler: the dashboards, the API, the exports' filter and the gate agree on a random database,
and all of them equal a plain loop over item pairs."""

import random
import re

import pytest

from app.models import TaskKind, UserStatus
from app.services import exports, screening
from app.services.agreement import pooling, report
from tests.agreement.helpers import add_ranking, make_task, reference_counts
from tests.factories import browser_login, token_headers


def _random_order(rng: random.Random, k: int) -> list[list[int]]:
    """A random ranking of k outputs with ties: shuffled, cut into 1..k buckets."""
    items = list(range(k))
    rng.shuffle(items)
    cuts = sorted(rng.sample(range(1, k), rng.randrange(0, k)))
    return [items[a:b] for a, b in zip([0, *cuts], [*cuts, k], strict=True)]


def test_every_consumer_shows_the_same_agreement(client, factory, db, settings):
    rng = random.Random(13)
    researchers = [factory.researcher() for _ in range(2)]
    labelers = [factory.labeler(status=rng.choice([UserStatus.active, UserStatus.screening])) for _ in range(6)]
    expected: dict[int, list[float]] = {lab.id: [0.0, 0] for lab in labelers}
    for _ in range(25):
        kind = rng.choice([TaskKind.gold, TaskKind.screening, TaskKind.production])
        k = rng.randint(4, 9)
        task = make_task(db, kind=kind, k=k, overlap=3)
        n_golds = rng.randint(0, 2) if kind in pooling.GOLD_KINDS else 0  # researchers rank gold kinds only
        golds = [(r, _random_order(rng, k)) for r in rng.sample(researchers, n_golds)]
        for user, order in golds:
            add_ranking(db, task=task, user=user, order=order)
        for lab in rng.sample(labelers, 3):
            order = _random_order(rng, k)
            add_ranking(db, task=task, user=lab, order=order)
            for _, gold in golds:
                credit, pairs = reference_counts(order, gold)
                expected[lab.id][0] += credit
                expected[lab.id][1] += pairs
    truth = {uid: (c / n if n else None) for uid, (c, n) in expected.items()}

    rows = {r.user_id: r for r in report.labeler_rows(db, settings=settings)}
    api = client.get("/api/v1/agreement/labelers", headers=token_headers(client, researchers[0])).json()
    api_rows = {r["user_id"]: r for r in api}
    export_filter = exports.labeler_agreement(db)
    browser_login(client, researchers[0])
    page = client.get("/dashboard/labelers").text
    for lab in labelers:
        want = truth[lab.id]
        gate, _, _ = screening.gold_agreement(db, user=lab, kinds=pooling.GOLD_KINDS)
        assert rows[lab.id].agreement_with_researchers == pytest.approx(want)
        assert api_rows[lab.id]["agreement_with_researchers"] == rows[lab.id].agreement_with_researchers
        assert export_filter.get(lab.id) == rows[lab.id].agreement_with_researchers
        assert gate.value == rows[lab.id].agreement_with_researchers
        cell = re.search(rf'data-labeler="{lab.username}".*?data-field="gold">([^<]*)<', page, re.S)
        assert cell is not None and cell.group(1) == ("—" if want is None else f"{100 * want:.1f}%")


def test_status_actions_and_promotion_come_from_the_services():
    assert screening.allowed_actions(UserStatus.screening) == ["approve", "reject"]
    assert screening.allowed_actions(UserStatus.pending_review) == ["approve", "reject"]
    assert screening.allowed_actions(UserStatus.rejected) == ["approve"]
    assert screening.allowed_actions(UserStatus.active) == ["pause"]
    assert screening.allowed_actions(UserStatus.paused) == ["resume"]
    assert screening.allowed_actions(UserStatus.suspended) == []
    assert [k for k in TaskKind if screening.can_promote_to_gold(k)] == [
        k for k in TaskKind if k not in (TaskKind.gold, TaskKind.screening)
    ]
