"""Flags: a labeler's flags compared with researchers' flags on the same outputs (set agreement, kappa, percent)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import metrics
from app.models import FLAGS, RankingItem


def _finite(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


@dataclass
class FlagStats:
    """A labeler's flags against researchers' flags on the same completions."""

    labels: dict[str, tuple[list[bool], list[bool]]] = field(default_factory=dict)
    same_set: int = 0
    total: int = 0

    @property
    def agreement(self) -> float | None:
        """Share of completions where the labeler's set of flags equals the researcher's."""
        return self.same_set / self.total if self.total else None

    def kappa(self) -> dict[str, float | None]:
        """Cohen kappa per flag (None when no completion was compared)."""
        return {
            flag: _finite(metrics.cohen_kappa(*self.labels[flag])) if flag in self.labels else None for flag in FLAGS
        }

    def used(self) -> dict[str, int]:
        """Per flag: on how many compared completions the labeler or the researcher set it (0: kappa says nothing)."""
        return {flag: sum(a or b for a, b in zip(*self.labels[flag], strict=True)) for flag in self.labels}

    def percent(self) -> dict[str, float | None]:
        """Percent agreement per flag: share of compared completions where both set it or both did not."""
        return {
            flag: _finite(metrics.percent_agreement(*self.labels[flag])) if flag in self.labels else None
            for flag in FLAGS
        }


def _item_flags(session: Session, *, ranking_ids: list[int]) -> dict[tuple[int, int], frozenset[str]]:
    """Flags per (ranking id, completion id) stored for these rankings."""
    c = RankingItem.__table__.c
    flags: dict[tuple[int, int], frozenset[str]] = {}
    for chunk in range(0, len(ranking_ids), 1000):
        rows = session.execute(
            select(c.ranking_id, c.completion_id, c.flags).where(c.ranking_id.in_(ranking_ids[chunk : chunk + 1000]))
        ).all()
        for ranking_id, completion_id, item_flags in rows:
            flags[(ranking_id, completion_id)] = frozenset(item_flags or [])
    return flags


def compared_flag_stats(session: Session, *, compared: Sequence[tuple[int, int, int]]) -> dict[int, FlagStats]:
    """Per user: flags of their ranking compared item by item with a researcher's, given (user, mine, gold) ids."""
    flags = _item_flags(session, ranking_ids=sorted({r for _, mine, gold in compared for r in (mine, gold)}))
    completions_of: dict[int, set[int]] = defaultdict(set)
    for ranking_id, completion_id in flags:
        completions_of[ranking_id].add(completion_id)
    stats: dict[int, FlagStats] = defaultdict(FlagStats)
    for user_id, mine, gold in compared:
        s = stats[user_id]
        for completion_id in sorted(completions_of[mine] & completions_of[gold]):
            x, y = flags[(mine, completion_id)], flags[(gold, completion_id)]
            s.total += 1
            s.same_set += x == y
            for flag in FLAGS:
                xs, ys = s.labels.setdefault(flag, ([], []))
                xs.append(flag in x)
                ys.append(flag in y)
    return dict(stats)
