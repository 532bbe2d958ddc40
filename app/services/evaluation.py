"""Human evaluation of model versions from eval ranking tasks: pairwise win rates and Bradley-Terry ratings.

An eval task mixes outputs of two (or more) versions for one prompt; every ranking of it compares each output of
one version with each output of another (above = win, same bucket = half). A version pair's win rate pools those
comparisons over rankings, with an interval clustered by ranking (`app.metrics.ratio_interval`); the ratings fit
all comparisons of all versions at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.metrics import ratio_interval
from app.metrics.preference import bradley_terry
from app.models import FLAGS, Completion, Ranking, RankingItem, RankingTask, TaskKind


@dataclass(frozen=True)
class PairPreference:
    """How often labelers preferred version `a`'s outputs to version `b`'s (a < b by id)."""

    a: int
    b: int
    win_rate: float
    """Share of comparisons `a` won (ties half)."""
    low: float
    high: float
    """95% interval, clustered by ranking (nan under 3 rankings)."""
    comparisons: int
    rankings: int


@dataclass(frozen=True)
class HumanEvaluation:
    pairs: list[PairPreference]
    ratings: dict[int, float]
    """Bradley-Terry rating (Elo points, mean 0) of every version that met another."""


def _outcomes(session: Session) -> dict[tuple[int, int], list[tuple[float, int]]]:
    """(a, b) -> one (wins of a, comparisons) unit per ranking of an eval task."""
    rows = session.execute(
        select(Ranking.buckets)
        .join(RankingTask, RankingTask.id == Ranking.task_id)
        .where(RankingTask.kind == TaskKind.eval, Ranking.not_rankable.is_(False))
    ).scalars()
    rankings = list(rows)
    ids = {cid for buckets in rankings for bucket in buckets for cid in bucket}
    version = dict(
        session.execute(select(Completion.id, Completion.model_version_id).where(Completion.id.in_(ids))).all()
    )
    units: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)
    for buckets in rankings:
        rank = {cid: b for b, bucket in enumerate(buckets) for cid in bucket}
        tally: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0])
        for c1, r1 in rank.items():
            for c2, r2 in rank.items():
                v1, v2 = version.get(c1), version.get(c2)
                if v1 is None or v2 is None or v1 >= v2:
                    continue
                tally[(v1, v2)][0] += 1.0 if r1 < r2 else 0.5 if r1 == r2 else 0.0
                tally[(v1, v2)][1] += 1
        for pair, (won, games) in tally.items():
            units[pair].append((won, int(games)))
    return units


def human_evaluation(session: Session) -> HumanEvaluation:
    """Win rates of every version pair that met in eval tasks, and ratings of all versions."""
    units = _outcomes(session)
    pairs = []
    versions = sorted({v for pair in units for v in pair})
    index = {v: i for i, v in enumerate(versions)}
    wins = np.zeros((len(versions), len(versions)))
    for (a, b), rows in sorted(units.items()):
        won = np.array([r[0] for r in rows])
        games = np.array([r[1] for r in rows], dtype=float)
        low, high = ratio_interval(won, games)
        pairs.append(PairPreference(a, b, float(won.sum() / games.sum()), low, high, int(games.sum()), len(rows)))
        wins[index[a], index[b]] += won.sum()
        wins[index[b], index[a]] += games.sum() - won.sum()
    ratings = bradley_terry(wins) if versions else np.array([])
    return HumanEvaluation(pairs, {v: float(r) for v, r in zip(versions, ratings, strict=True)})


@dataclass(frozen=True)
class Share:
    """A share of outputs with its 95% interval, clustered by ranking (nan under 3 rankings)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class VersionCriteria:
    """How labelers judged one version's outputs in eval tasks, beyond the order (InstructGPT's "metadata")."""

    version: int
    outputs: int
    """Judgements of this version's outputs (an output ranked by two labelers counts twice)."""
    rankings: int
    mean_rating: float | None
    """Mean 1-7 rating over the outputs that were rated; None when none was."""
    rated: int
    flags: dict[str, Share]
    """Share of the outputs flagged, per content flag (every flag, zeros included)."""


def criteria_by_version(session: Session) -> list[VersionCriteria]:
    """Per model version: mean rating and the share flagged with each flag, from every eval ranking's items."""
    rows = session.execute(
        select(RankingItem.ranking_id, Completion.model_version_id, RankingItem.rating, RankingItem.flags)
        .join(Ranking, Ranking.id == RankingItem.ranking_id)
        .join(RankingTask, RankingTask.id == Ranking.task_id)
        .join(Completion, Completion.id == RankingItem.completion_id)
        .where(RankingTask.kind == TaskKind.eval, Completion.model_version_id.is_not(None))
    ).all()
    # version -> ranking -> (outputs, flagged per flag); version -> ratings
    units: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0] * (len(FLAGS) + 1)))
    ratings: dict[int, list[int]] = defaultdict(list)
    for ranking_id, version, rating, flags in rows:
        unit = units[version][ranking_id]
        unit[0] += 1
        for flag in flags or ():
            if flag in FLAGS:
                unit[1 + FLAGS.index(flag)] += 1
        if rating is not None:
            ratings[version].append(rating)
    result = []
    for version in sorted(units):
        table = np.array(list(units[version].values()))  # (rankings, 1 + flags): outputs, then flagged counts
        outputs = table[:, 0]
        shares = {}
        for i, flag in enumerate(FLAGS, start=1):
            low, high = ratio_interval(table[:, i], outputs)
            shares[flag] = Share(float(table[:, i].sum() / outputs.sum()), low, high)
        rated = ratings[version]
        result.append(
            VersionCriteria(
                version=version,
                outputs=int(outputs.sum()),
                rankings=len(table),
                mean_rating=float(np.mean(rated)) if rated else None,
                rated=len(rated),
                flags=shares,
            )
        )
    return result
