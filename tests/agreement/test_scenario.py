"""Simulated labelers through the real API: researchers build a screening set, the gate sorts careful from random."""

import random

import pytest
from sqlalchemy import select

from app.deps import settings_dep
from app.models import User, UserStatus
from tests.agreement.helpers import reference_counts
from tests.factories import token_headers

K = 5
SET_SIZE = 6


def _gold_order(rng: random.Random) -> list[list[int]]:
    order = list(range(K))
    rng.shuffle(order)
    return [[i] for i in order]


def _flat(buckets):
    return [i for bucket in buckets for i in bucket]


def _rank_like(gold, rng, *, careful: bool):
    order = _flat(gold)
    if careful:
        if rng.random() < 0.3:
            i = rng.randrange(K - 1)
            order[i], order[i + 1] = order[i + 1], order[i]
    else:
        rng.shuffle(order)
    return [[i] for i in order]


def _submit(client, headers, rankings_by_task, task_of, rng, *, careful: bool, flags_share: float = 0.0, flagged=None):
    """Rank every task served until the queue is empty or closed; returns how many were submitted."""
    done = 0
    while True:
        resp = client.get("/api/v1/labeling/next", headers=headers)
        if resp.status_code != 200:
            return done, resp.status_code
        body = resp.json()
        ids = {c["id"] for c in body["completions"]}
        task_id, completion_ids, gold = task_of(ids)
        order = _rank_like(gold, rng, careful=careful)
        flags = {completion_ids[i]: ["hallucination"] for i in range(K) if rng.random() < flags_share}
        ranking = [[completion_ids[i] for i in bucket] for bucket in order]
        resp = client.post(
            f"/api/v1/labeling/assignments/{body['assignment_id']}/ranking",
            json={"ranking": ranking, "flags": flags, "idempotency_key": f"{task_id}-{rng.random()}"},
            headers=headers,
        )
        assert resp.status_code == 201, resp.text
        rankings_by_task.setdefault(task_id, []).append((resp.json()["labeler_id"], order))
        if flagged is not None:
            flagged[(task_id, resp.json()["labeler_id"])] = len(flags)
        done += 1


@pytest.fixture
def scenario_settings(app, settings):
    custom = settings.model_copy(update={"screening_set_size": SET_SIZE, "hidden_gold_share": 0.0})
    app.dependency_overrides[settings_dep] = lambda: custom
    return custom


def test_gate_activates_careful_labelers_only_and_dashboard_matches(client, factory, db, scenario_settings):
    rng = random.Random(20240611)
    r1, r2 = factory.researcher(), factory.researcher()
    h1, h2 = token_headers(client, r1), token_headers(client, r2)
    tasks = {}  # task id -> (completion ids, gold buckets of positions)
    for n in range(SET_SIZE):
        gold = _gold_order(rng)
        resp = client.post(
            "/api/v1/tasks",
            json={
                "prompt": f"Screening prompt {n}: explain tides.",
                "completions": [f"answer {n}.{i}" for i in range(K)],
                "kind": "screening",
                "gold_ranking": gold,
            },
            headers=h1,
        )
        assert resp.status_code == 201, resp.text
        tasks[resp.json()["id"]] = (resp.json()["completion_ids"], gold)

    def task_of(ids):
        task_id = next(t for t, (cids, _) in tasks.items() if set(cids) == ids)
        return task_id, tasks[task_id][0], tasks[task_id][1]

    rankings = {t: [(r1.id, gold)] for t, (_, gold) in tasks.items()}
    # the second researcher ranks the same set through the ranking API, close to the first
    done, last = _submit(client, h2, rankings, task_of, random.Random(1), careful=True)
    assert done == SET_SIZE and last == 204

    flagged: dict[tuple[int, int], int] = {}  # (task, labeler) -> outputs flagged
    careful = [factory.labeler(status=UserStatus.screening) for _ in range(4)]
    sloppy = [factory.labeler(status=UserStatus.screening) for _ in range(4)]
    for i, lab in enumerate(careful + sloppy):
        is_careful = lab in careful
        done, last = _submit(
            client,
            token_headers(client, lab),
            rankings,
            task_of,
            random.Random(100 + i),
            careful=is_careful,
            flags_share=0.0 if is_careful else 0.3,
            flagged=flagged,
        )
        assert done == SET_SIZE  # the screening set, then the gate closed the queue
        assert last == (204 if is_careful else 403)

    statuses = {u.id: u.status for u in db.scalars(select(User).where(User.id.in_([u.id for u in careful + sloppy])))}
    assert all(statuses[u.id] == UserStatus.active for u in careful)
    assert all(statuses[u.id] == UserStatus.pending_review for u in sloppy)

    # independent figures: plain loops over item pairs against every researcher ranking of the task
    expected = {}
    for lab in careful + sloppy:
        agree = comparable = 0
        for task_rankings in rankings.values():
            mine = [order for uid, order in task_rankings if uid == lab.id]
            for uid, gold in task_rankings:
                if uid in (r1.id, r2.id):
                    n, d = reference_counts(mine[0], gold)
                    agree, comparable = agree + n, comparable + d
        expected[lab.id] = agree / comparable

    resp = client.get("/api/v1/agreement/labelers", headers=h1)
    assert resp.status_code == 200
    rows = {row["user_id"]: row for row in resp.json()}
    for lab in careful + sloppy:
        row = rows[lab.id]
        assert row["username"] == lab.username and row["status"] == statuses[lab.id].value
        assert row["n_gold"] == SET_SIZE
        assert row["agreement_with_researchers"] == pytest.approx(expected[lab.id])
        assert row["screening_agreement"] == pytest.approx(expected[lab.id])
        assert row["ci_low"] <= row["agreement_with_researchers"] <= row["ci_high"]
    assert min(expected[u.id] for u in careful) >= 0.75 > max(expected[u.id] for u in sloppy)

    # between labelers: each labeler against every other labeler's ranking of the same task
    labeler_ids = {u.id for u in careful + sloppy}
    for lab in careful + sloppy:
        agree = comparable = 0
        for task_rankings in rankings.values():
            mine = next(order for uid, order in task_rankings if uid == lab.id)
            for uid, other in task_rankings:
                if uid in labeler_ids and uid != lab.id:
                    n, d = reference_counts(mine, other, peers=True)
                    agree, comparable = agree + n, comparable + d
        assert rows[lab.id]["agreement_with_labelers"] == pytest.approx(agree / comparable)
        # flags: researchers flagged nothing, so an output agrees when the labeler did not flag it either
        outputs = SET_SIZE * K
        unflagged = outputs - sum(n for (_, uid), n in flagged.items() if uid == lab.id)
        assert rows[lab.id]["flag_agreement"] == pytest.approx(unflagged / outputs)
        assert rows[lab.id]["flag_percent_agreement"]["hallucination"] == pytest.approx(unflagged / outputs)

    # the overview: counts and the researchers' agreement with each other
    overview = client.get("/api/v1/agreement/overview", headers=h1).json()
    assert overview["rankings"] == sum(len(r) for r in rankings.values()) == SET_SIZE * (2 + 8)
    assert overview["tasks_by_kind"]["screening"] == SET_SIZE
    assert overview["labelers_by_status"] == {"active": 4, "pending_review": 4}
    agree = comparable = 0
    for task_rankings in rankings.values():
        (first,), (second,) = ([o for u, o in task_rankings if u == r.id] for r in (r1, r2))
        n, d = reference_counts(first, second, peers=True)
        agree, comparable = agree + n, comparable + d
    assert overview["researcher_agreement"]["value"] == pytest.approx(agree / comparable)

    # a researcher approves one sloppy labeler after review; rejecting another needs a reason
    decision = f"/api/v1/users/{sloppy[0].id}/screening-decision"
    assert (
        client.post(decision, json={"approve": True, "reason": "re-trained"}, headers=h1).json()["status"] == "active"
    )
    reject = client.post(f"/api/v1/users/{sloppy[1].id}/screening-decision", json={"approve": False}, headers=h1)
    assert reject.status_code == 422 and "reason" in reject.json()["detail"]
