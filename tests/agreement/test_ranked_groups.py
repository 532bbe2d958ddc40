"""The reward model's view of the rankings comes from the export's own filters, not a copy of them."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from app.models import FLAGS, ModelKind, ModelVersion, Split, TaskKind, UserStatus, utcnow
from app.services import exports
from tests.agreement.helpers import add_ranking, make_task


def _random_db(db, factory, rng: random.Random):
    researcher = factory.researcher()
    labelers = [factory.labeler(status=rng.choice([UserStatus.active, UserStatus.paused])) for _ in range(4)]
    sft = ModelVersion(kind=ModelKind.sft, name="sft", path="/nowhere")
    db.add(sft)
    db.flush()
    start = utcnow() - timedelta(days=10)
    for n in range(12):
        task = make_task(db, kind=rng.choice([TaskKind.production, TaskKind.gold]), k=rng.randint(4, 9))
        if n % 2:
            task.model_version_id = sft.id
            for item in task.items:
                item.completion.model_version_id = sft.id
        for user in [researcher, *rng.sample(labelers, 2)]:
            order = list(range(len(task.items)))
            rng.shuffle(order)
            buckets, cut = [], 0
            while cut < len(order):
                size = rng.choice([1, 1, 2])
                buckets.append(order[cut : cut + size])
                cut += size
            flags = {i: [rng.choice(FLAGS)] for i in order if rng.random() < 0.2}
            add_ranking(db, task=task, user=user, order=buckets, flags=flags, at=start + timedelta(hours=n * 12))
    return sft, start


@pytest.mark.parametrize("seed", range(4))
def test_groups_keep_exactly_the_rankings_the_export_keeps(db, factory, settings, seed):
    rng = random.Random(seed)
    sft, start = _random_db(db, factory, rng)
    options = exports.ExportOptions(
        format="rankings",
        active_only=rng.random() < 0.5,
        min_agreement=rng.choice([None, 0.3, 0.6]),
        exclude_flags=tuple(rng.sample(FLAGS, 2)),
        model_versions=rng.choice([None, (sft.id,)]),
        since=rng.choice([None, start + timedelta(days=2)]),
        until=rng.choice([None, start + timedelta(days=5)]),
    )
    lines = list(exports.export_records(exports.single_session(db), settings=settings, options=options))
    groups = list(exports.ranked_groups(exports.single_session(db), settings=settings, options=options))
    assert {g.ranking_id for g in groups} == {line["ranking_id"] for line in lines}
    by_id = {line["ranking_id"]: line for line in lines}
    for group in groups:
        line = by_id[group.ranking_id]
        text_rank = {group.completions[i]: r for i, r in enumerate(group.ranks) if r >= 0}
        exported = {line["completions"][i][0]["content"]: b for b, bucket in enumerate(line["buckets"]) for i in bucket}
        assert text_rank == exported
        assert group.labeler == line["labeler"] and group.split == Split(line["split"])
        assert list(group.messages) == line["prompt"]
        assert len(group.completion_ids) == len(group.completions) == len(group.ranks) >= 4


def test_model_version_and_date_filters(db, factory, settings):
    sft, start = _random_db(db, factory, random.Random(7))
    every = list(exports.ranked_groups(exports.single_session(db), settings=settings, options=exports.ExportOptions()))
    only_sft = exports.ExportOptions(model_versions=(sft.id,))
    kept = list(exports.ranked_groups(exports.single_session(db), settings=settings, options=only_sft))
    assert kept and len(kept) < len(every)
    assert all(set(g.model_version_ids) == {sft.id} for g in kept)
    window = exports.ExportOptions(since=start + timedelta(days=2), until=start + timedelta(days=4))
    in_window = list(exports.ranked_groups(exports.single_session(db), settings=settings, options=window))
    # tasks n = 4..7 were ranked at 2, 2.5, 3 and 3.5 days: three rankings each
    assert len(in_window) == 4 * 3
