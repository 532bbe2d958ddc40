"""Agreement aggregate tables: per ranking, task, labeler, day and (ranker, researcher) cell.

Kept up to date inside every transaction that changes a ranking (app/services/agreement/aggregates.py), rebuilt by
`ranklab agreement rebuild`. Core tables: written and read in bulk, never as objects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
)

from app.enums import TaskKind
from app.models.base import Base, UTCDateTime, enum_column

metadata: MetaData = Base.metadata

# Agreement aggregates (app/services/agreement/aggregates.py): kept up to date inside every transaction that changes
# a ranking, rebuilt by `ranklab agreement rebuild`. Core tables: they are written and read in bulk, never as objects.


def _sums(prefix: str) -> list[Column[Any]]:
    """n, sum y, sum m, sum y^2, sum y m, sum m^2 (metrics.ratio_interval_from_sums) and tied, under ``prefix``."""
    return [
        Column(f"{prefix}_n", BigInteger, nullable=False, default=0),
        *(Column(f"{prefix}_{s}", Float, nullable=False, default=0.0) for s in ("y", "m", "yy", "ym", "mm")),
        Column(f"{prefix}_tied", BigInteger, nullable=False, default=0),
    ]


agreement_units = Table(
    "agreement_units",
    metadata,
    Column("ranking_id", ForeignKey("rankings.id", ondelete="CASCADE"), primary_key=True),
    Column("task_id", ForeignKey("ranking_tasks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("user_id", Integer, nullable=False),
    Column("kind", enum_column(TaskKind), nullable=False),
    Column("by_researcher", Boolean, nullable=False),
    Column("usable", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("day", Date, nullable=False),
    Column("time_spent_ms", Integer),
    Column("k", SmallInteger, nullable=False),
    Column("first_shown_won", SmallInteger, nullable=False),
    Column("strict", Integer, nullable=False),
    # against the researchers' rankings of its task (refs: how many), and as a peer of the other labelers'
    Column("gold_refs", Integer, nullable=False),
    Column("gold_credit", Float, nullable=False),
    Column("gold_pairs", Integer, nullable=False),
    Column("gold_tied", Integer, nullable=False),
    Column("peer_refs", Integer, nullable=False),
    Column("peer_credit", Float, nullable=False),
    Column("peer_pairs", Integer, nullable=False),
    Column("peer_tied", Integer, nullable=False),
    # pairs this ranking made with earlier ones (the day a pair counts on): labeler-labeler, researcher-researcher
    Column("late_peer_n", Integer, nullable=False),
    Column("late_peer_credit", Float, nullable=False),
    Column("late_peer_pairs", Integer, nullable=False),
    *(Column(f"late_rr_{s}", Float, nullable=False) for s in ("n", "y", "m", "yy", "ym", "mm")),
    Column("flag_same", Integer, nullable=False),
    Column("flag_total", Integer, nullable=False),
    Column("flag_counts", JSON, nullable=False),
    Index("ix_agreement_units_user_kind_created", "user_id", "kind", "created_at", "ranking_id"),
)
"""One row per ranking: its scores against the other rankings of its task (a labeler ranking's *unit*)."""

agreement_tasks = Table(
    "agreement_tasks",
    metadata,
    Column("task_id", ForeignKey("ranking_tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", enum_column(TaskKind), nullable=False),
    Column("n_labelers", Integer, nullable=False),
    Column("peer_credit", Float, nullable=False),
    Column("peer_pairs", BigInteger, nullable=False),
    Column("agreement", Float),
    Column("sort_key", Float, nullable=False),
    Column("all_score", Float),
    Column("alpha", Float),
    Column("matrix", JSON, nullable=False),
    Index("ix_agreement_tasks_sort", "sort_key", "task_id"),
    Index("ix_agreement_tasks_all_score", "all_score", "task_id"),
)
"""Per task: inter-labeler agreement and alpha (per-task view), agreement of all its rankings (disagreement queue),
and its (ranker, researcher) matrix cells."""

agreement_labelers = Table(
    "agreement_labelers",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("n_rankings", BigInteger, nullable=False, default=0),
    Column("figures", JSON),
)
"""Per user: rankings stored, and the labelers table's figures (recomputed from the user's units on change)."""

agreement_days = Table(
    "agreement_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("rankings", BigInteger, nullable=False, default=0),
    Column("strict", BigInteger, nullable=False, default=0),
    *_sums("gold"),
    *_sums("peer"),
    *_sums("rr"),
    Column("late_peer_n", BigInteger, nullable=False, default=0),
    Column("late_peer_credit", Float, nullable=False, default=0.0),
    Column("late_peer_pairs", BigInteger, nullable=False, default=0),
)
"""Per UTC day, kept by difference: rankings, strict comparisons and the sums the overview pools."""

agreement_matrix = Table(
    "agreement_matrix",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("researcher_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("credit", Float, nullable=False, default=0.0),
    Column("pairs", BigInteger, nullable=False, default=0),
    Column("n", BigInteger, nullable=False, default=0),
)
"""Per (ranker, researcher), kept by difference: credit, pairs and rankings compared over the tasks both ranked."""
