"""Human win rates and ratings from eval tasks that mix two versions' outputs, against counts done by hand."""

from __future__ import annotations

import pytest

from app.models import ModelKind, ModelVersion, TaskKind
from app.services.evaluation import human_evaluation
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.agreement.helpers import add_ranking


def _versions(db):
    sft = ModelVersion(kind=ModelKind.sft, name="sft", path="/m/sft")
    db.add(sft)
    db.flush()
    policy = ModelVersion(kind=ModelKind.policy, name="ppo", path="/m/ppo", parent_id=sft.id)
    db.add(policy)
    db.flush()
    return sft, policy


def _eval_task(db, n: int, sft: ModelVersion, policy: ModelVersion):
    """Outputs 0, 1 by the policy and 2, 3 by the SFT model."""
    prompt, _ = get_or_create_prompt(db, text=f"eval prompt {n}")
    outputs = [NewCompletion(text=f"{n}-p{i}", model_version_id=policy.id) for i in range(2)]
    outputs += [NewCompletion(text=f"{n}-s{i}", model_version_id=sft.id) for i in range(2)]
    return create_task(db, prompt=prompt, completions=outputs, kind=TaskKind.eval)


def test_win_rate_counts_cross_version_pairs_with_ties_half(db, factory):
    sft, policy = _versions(db)
    labeler = factory.labeler()
    a = _eval_task(db, 0, sft, policy)
    add_ranking(db, task=a, user=labeler, order=[[0], [1], [2], [3]])  # policy wins all 4 cross pairs
    b = _eval_task(db, 1, sft, policy)
    add_ranking(db, task=b, user=labeler, order=[[2], [0, 3], [1]])  # p0>s3? tie(0.5); s2>p0, s2>p1, s3>p1: 0.5 of 4
    c = _eval_task(db, 2, sft, policy)
    add_ranking(db, task=c, user=labeler, order=[[0, 1, 2, 3]])  # all tied: 2 of 4
    result = human_evaluation(db)
    [pair] = result.pairs
    assert (pair.a, pair.b) == (sft.id, policy.id)
    # from the SFT side: lost 4 of 4, won 3.5 of 4, half of 4
    assert pair.win_rate == pytest.approx((0 + 3.5 + 2) / 12)
    assert pair.comparisons == 12 and pair.rankings == 3 and pair.low < pair.win_rate < pair.high
    assert result.ratings[policy.id] > result.ratings[sft.id]
    assert result.ratings[policy.id] == pytest.approx(-result.ratings[sft.id])


def test_no_eval_rankings_no_figures(db):
    assert human_evaluation(db).pairs == [] and human_evaluation(db).ratings == {}


def test_criteria_by_version_counts_ratings_and_flags_per_version(db, factory):
    """Issue 21: per version, the mean 1-7 rating over rated outputs and the share flagged per flag (by hand)."""
    from app.models import RankingItem
    from app.services.evaluation import criteria_by_version

    sft, policy = _versions(db)
    labelers = [factory.labeler() for _ in range(3)]
    for n, labeler in enumerate(labelers):
        task = _eval_task(db, 10 + n, sft, policy)
        ranking = add_ranking(db, task=task, user=labeler, order=[[0], [1], [2], [3]])
        ids = [i.completion_id for i in task.items]
        items = {i.completion_id: i for i in db.query(RankingItem).filter_by(ranking_id=ranking.id)}
        items[ids[0]].rating, items[ids[1]].rating = 6, 7  # the policy's two outputs
        items[ids[2]].rating = 2  # one SFT output rated, the other not
        items[ids[2]].flags = ["hallucination"]
        if n == 0:
            items[ids[3]].flags = ["hallucination", "fails_instruction"]
    db.flush()
    by_version = {c.version: c for c in criteria_by_version(db)}
    mine, base = by_version[policy.id], by_version[sft.id]
    assert (mine.outputs, mine.rankings, mine.rated, mine.mean_rating) == (6, 3, 6, 6.5)
    assert (base.outputs, base.rated, base.mean_rating) == (6, 3, 2.0)
    assert base.flags["hallucination"].value == pytest.approx(4 / 6)
    assert base.flags["fails_instruction"].value == pytest.approx(1 / 6)
    assert base.flags["hallucination"].low < 4 / 6 < base.flags["hallucination"].high  # 3 rankings: an interval
    assert all(s.value == 0 for s in mine.flags.values())
