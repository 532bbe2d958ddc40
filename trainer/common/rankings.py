"""Rankings as every trainer that learns from them reads them (reward model, DPO): one task = a conversation, its K
completions and every ranking of it; plus the seeded splits and batch orders over tasks.

`group_tasks` turns the export's `RankedGroup`s (`app.services.exports.ranked_groups`, the export's filters) into
tasks by prompt split; `manifest`/`from_manifest` write and re-read the rankings a job chose, so a resumed job trains
on exactly what its first attempt began with.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.models import Split
from app.services import exports

EXCLUDED = -1
"""Rank of a completion left out of a ranking (flagged and excluded); such a completion is in no pair."""


@dataclass(frozen=True)
class RankingRecord:
    """One labeler's ranking of a task's completions."""

    ranks: list[int]
    """Bucket index per completion, 0 = best; ties share an index; -1 = left out of this ranking."""
    weight: float = 1.0
    """Weight of this ranking in the loss (e.g. from labeler agreement); used when the config asks for it."""
    labeler: str = ""
    """Who ranked (for leave-labelers-out evaluation)."""
    ranking_id: int | None = None
    """Database id, for tracing only."""


@dataclass(frozen=True)
class TaskGroup:
    """One task: a prompt, its K completions, and every ranking of them."""

    task_id: int
    """Database id of the ranking task (the unit of the train/validation split)."""
    prompt: str | Sequence[Mapping[str, str]]
    """The conversation as shown to the labelers (plain text: one user message)."""
    completions: list[str]
    """The K completion texts, in the order the ranks refer to."""
    rankings: list[RankingRecord]
    """Every usable ranking of this task ("not rankable" answers are left out by the caller)."""
    completion_ids: list[int] | None = None
    """Database ids of the completions, for tracing only."""

    def __post_init__(self) -> None:
        k = len(self.completions)
        for ranking in self.rankings:
            if len(ranking.ranks) != k or any(r < EXCLUDED for r in ranking.ranks):
                raise ValueError(f"task {self.task_id}: ranks {ranking.ranks} do not fit {k} completions")


def has_strict_pair(ranks: Sequence[int]) -> bool:
    """True when at least two ranked completions sit in different buckets."""
    return len({r for r in ranks if r != EXCLUDED}) >= 2


def split_tasks(
    tasks: Sequence[TaskGroup], val_fraction: float, *, seed: int = 0
) -> tuple[list[TaskGroup], list[TaskGroup]]:
    """Split by task (so by prompt): (train, validation), seeded."""
    order = list(range(len(tasks)))
    random.Random(seed).shuffle(order)
    n_val = round(len(tasks) * val_fraction)
    val = set(order[:n_val])
    return [t for i, t in enumerate(tasks) if i not in val], [t for i, t in enumerate(tasks) if i in val]


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int, mega_batch_size: int = 16
) -> list[list[int]]:
    """Batches of item indices: shuffled, sorted by length within mega-batches, batch order shuffled.

    Deterministic for (seed, epoch), so a resumed run finds its position again from a batch counter.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)).tolist()
    mega = batch_size * mega_batch_size
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


def group_tasks(groups: Iterable[exports.RankedGroup], *, weight_by_agreement: bool) -> dict[Split, list[TaskGroup]]:
    """Rankings -> one TaskGroup per task (its rankings share the forward passes of its outputs), by prompt split."""
    tasks: dict[int, tuple[exports.RankedGroup, list[RankingRecord]]] = {}
    for g in groups:
        weight = 1.0 if g.by_researcher or not weight_by_agreement else float(g.labeler_agreement or 0.0)
        record = RankingRecord(list(g.ranks), weight=weight, labeler=g.labeler, ranking_id=g.ranking_id)
        tasks.setdefault(g.task_id, (g, []))[1].append(record)
    by_split: dict[Split, list[TaskGroup]] = {split: [] for split in Split}
    for first, records in tasks.values():
        group = TaskGroup(
            first.task_id, list(first.messages), list(first.completions), records, list(first.completion_ids)
        )
        by_split[first.split].append(group)
    return by_split


def manifest_tasks(groups: Sequence[TaskGroup]) -> dict[str, list[list[Any]]]:
    """Task id -> [[ranking id, weight], ...]: what a job chose, as JSON."""
    return {str(t.task_id): [[r.ranking_id, r.weight] for r in t.rankings] for t in groups}


def tasks_from_manifest(rows_by_task: Mapping[str, list[list[Any]]], found: Mapping[int, Any]) -> list[TaskGroup]:
    """`manifest_tasks` read back, the rankings' data taken from `found` (ranking id -> RankedGroup)."""
    out = []
    for rows in rows_by_task.values():
        first = found[int(rows[0][0])]
        records = [RankingRecord(list(found[int(rid)].ranks), weight=float(w), labeler=found[int(rid)].labeler,
                                 ranking_id=int(rid)) for rid, w in rows]  # fmt: skip
        out.append(TaskGroup(first.task_id, list(first.messages), list(first.completions), records,
                             list(first.completion_ids)))  # fmt: skip
    return out
