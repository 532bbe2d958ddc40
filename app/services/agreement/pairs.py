"""Pair scoring: every same-task pair of rankings scored once, then summed per ranking (a *unit*) or per task.

Two rankings of one task by different people are scored with ``metrics.pair_counts_batch`` (one call per K):
concordant and discordant item pairs, and the pairs only one of them tied. From those counts:

* a ranking against a researcher's (the reference): credit = same order + 0.5 x tied by the ranking, over the
  pairs the researcher orders strictly;
* two labelers (peers): credit = same order + 0.5 x tied by one of them, over the pairs either orders strictly.

A unit is one labeler ranking with its credit, pairs and tied pairs summed over the researcher (or peer) rankings
of its task; pooled figures are ``sum(credit) / sum(pairs)`` over units (``pooling``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app import metrics
from app.services.agreement.table import RankingTable


@dataclass
class PairTable:
    """Same-task pairs of RankingTable rows (i < j, different users), in task then (i, j) order, with counts."""

    i: np.ndarray  # (P,)
    j: np.ndarray  # (P,)
    concordant: np.ndarray  # (P,) item pairs both order strictly, the same way
    discordant: np.ndarray  # (P,) item pairs both order strictly, opposite ways
    tied_i: np.ndarray  # (P,) item pairs ranking i ties and ranking j orders strictly
    tied_j: np.ndarray  # (P,) item pairs ranking j ties and ranking i orders strictly

    def against(self, mine_is_i: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(credit, pairs, tied) of one side of each pair scored against the other side as the reference."""
        tied = np.where(mine_is_i, self.tied_i, self.tied_j)
        return self.concordant + 0.5 * tied, self.concordant + self.discordant + tied, tied

    def peers(self) -> tuple[np.ndarray, np.ndarray]:
        """(credit, pairs) of each pair as two peers: pairs strict in either, a one-sided tie counting 0.5."""
        one_tied = self.tied_i + self.tied_j
        return self.concordant + 0.5 * one_tied, self.concordant + self.discordant + one_tied


@dataclass
class Units:
    """Labeler rankings (RankingTable rows, ascending) with credit / pairs / tied summed over their pairs."""

    row: np.ndarray  # (U,)
    credit: np.ndarray  # (U,) float: 1 per same-order pair, 0.5 per pair the labeler (or the peer) tied
    pairs: np.ndarray  # (U,) int: pairs counted
    tied: np.ndarray  # (U,) int: counted pairs the labeler tied


def pair_indexes(group: np.ndarray, user_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j), i < j, of rows in the same run of equal ``group`` values with different ``user_id``."""
    n = group.size
    bounds = np.r_[np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if n else [], n].astype(np.int64)
    ends = np.repeat(bounds[1:], np.diff(bounds))  # (N,) end of each row's run
    partners = ends - np.arange(n) - 1  # (N,) later rows in the same run
    i = np.repeat(np.arange(n), partners)
    j = i + 1 + np.arange(i.size) - np.repeat(np.cumsum(partners) - partners, partners)
    keep = user_id[i] != user_id[j]
    return i[keep], j[keep]


def score_pairs(ranks: np.ndarray, k: np.ndarray, i: np.ndarray, j: np.ndarray) -> PairTable:
    """Ranking i against ranking j for every (i, j), batched per k."""
    counts = [np.zeros(i.size, dtype=np.int64) for _ in range(4)]
    for size in np.unique(k[i]).tolist():
        at = np.flatnonzero(k[i] == size)
        got = metrics.pair_counts_batch(ranks[i[at], :size], ranks[j[at], :size])
        for total, part in zip(counts, got, strict=True):
            total[at] = part
    return PairTable(i, j, *counts)


def table_pairs(table: RankingTable) -> PairTable:
    """Every pair of rankings of the same task by different people, scored."""
    i, j = pair_indexes(table.task_id, table.user_id)
    return score_pairs(table.ranks, table.k, i, j)


def _units(mine: np.ndarray, credit: np.ndarray, pairs: np.ndarray, tied: np.ndarray, n_rows: int) -> Units:
    rows = np.unique(mine)
    sums = [np.bincount(mine, weights=w, minlength=n_rows)[rows] for w in (credit, pairs, tied)]
    return Units(rows, sums[0], sums[1].astype(np.int64), sums[2].astype(np.int64))


def researcher_units(table: RankingTable, pairs: PairTable) -> Units:
    """Per labeler ranking: scored against every researcher ranking of its task, summed."""
    r_i, r_j = table.by_researcher[pairs.i], table.by_researcher[pairs.j]
    on_i, on_j = ~r_i & r_j, r_i & ~r_j  # the labeler is i / j
    mine = np.r_[pairs.i[on_i], pairs.j[on_j]]
    credit, n, tied = (np.r_[a[on_i], b[on_j]] for a, b in zip(pairs.against(on_i), pairs.against(~on_j), strict=True))
    return _units(mine, credit, n, tied, table.id.size)


def peer_units(table: RankingTable, pairs: PairTable) -> Units:
    """Per labeler ranking: scored as a peer with every other labeler's ranking of its task, summed."""
    neither = ~table.by_researcher[pairs.i] & ~table.by_researcher[pairs.j]
    credit, n = (x[neither] for x in pairs.peers())
    mine = np.r_[pairs.i[neither], pairs.j[neither]]
    tied = np.r_[pairs.tied_i[neither], pairs.tied_j[neither]]
    return _units(mine, np.r_[credit, credit], np.r_[n, n], tied, table.id.size)


def researcher_comparisons(table: RankingTable, pairs: PairTable) -> list[tuple[int, int, int]]:
    """(user id, their ranking id, researcher ranking id) for every labeler-researcher pair."""
    flip = table.by_researcher[pairs.i] & ~table.by_researcher[pairs.j]
    mixed = table.by_researcher[pairs.i] != table.by_researcher[pairs.j]
    mine, gold = np.where(flip, pairs.j, pairs.i)[mixed], np.where(flip, pairs.i, pairs.j)[mixed]
    return list(zip(table.user_id[mine].tolist(), table.id[mine].tolist(), table.id[gold].tolist(), strict=True))


def task_sums(table: RankingTable, pairs: PairTable, mask: np.ndarray) -> dict[int, tuple[float, int]]:
    """Per task id: peer (credit, pairs) summed over the pairs selected by ``mask``."""
    tasks, at = np.unique(table.task_id[pairs.i[mask]], return_inverse=True)
    credit, n = (x[mask] for x in pairs.peers())
    credit_sum = np.bincount(at, weights=credit, minlength=tasks.size)
    n_sum = np.bincount(at, weights=n, minlength=tasks.size).astype(np.int64)
    return dict(zip(tasks.tolist(), zip(credit_sum.tolist(), n_sum.tolist(), strict=True), strict=True))


def strict_comparisons(table: RankingTable) -> int:
    """Item pairs ordered strictly (not tied), summed over all rankings."""
    total = 0
    for size in np.unique(table.k).tolist():
        ranks = table.ranks[table.k == size, :size]  # (N_k, k)
        total += int(np.count_nonzero(ranks[:, :, None] < ranks[:, None, :]))
    return total
