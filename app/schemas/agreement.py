"""Agreement, screening and export models (JSON under /api/v1/agreement and the dashboards' view data)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.models import Role, TaskKind, UserStatus


class Interval(BaseModel):
    """A pooled pairwise agreement with its n and 95% interval (None when nothing is comparable)."""

    value: float | None = Field(
        description="pairwise agreement: same order 1, tied by one side 0.5, reversed 0, over the pairs counted"
    )
    n: int = Field(description="units pooled (rankings)")
    ci_low: float | None = Field(description="95% interval (Wilson, design effect and t-corrected); None under 3 units")
    ci_high: float | None
    pairs: int = Field(
        0, description="item pairs counted: strict in the researcher's ranking, or (between labelers) in either"
    )
    tied_share: float | None = Field(None, description="share of the pairs counted that the labeler tied")


class LabelerAgreementRead(BaseModel):
    """One labeler's row in the labelers table."""

    user_id: int
    username: str
    status: UserStatus
    gold_alert: bool
    n_rankings: int
    agreement_with_researchers: float | None = Field(
        description="over the pairs researchers order strictly: same order 1, tied by the labeler 0.5, reversed 0"
    )
    n_gold: int = Field(description="the labeler's rankings of tasks a researcher also ranked")
    ci_low: float | None = Field(description="95% interval of agreement_with_researchers; None under 3 gold rankings")
    ci_high: float | None
    tied_share: float | None = Field(
        None, description="share of the pairs researchers order strictly that the labeler tied"
    )
    agreement_with_labelers: float | None = Field(
        description="with other labelers over the pairs either orders strictly: same 1, tied by one 0.5, reversed 0"
    )
    n_overlap: int = Field(description="the labeler's rankings of tasks another labeler also ranked")
    labelers_ci_low: float | None
    labelers_ci_high: float | None
    flag_agreement: float | None = Field(description="share of gold completions with the researcher's flag set")
    flag_kappa: dict[str, float | None]
    flag_percent_agreement: dict[str, float | None] = Field(
        description="per flag: share of gold completions where labeler and researcher agree on it (set or not)"
    )
    flag_used: dict[str, int] = Field(
        default_factory=dict,
        description="per flag: compared completions where the labeler or the researcher set it (kappa needs some)",
    )
    median_seconds: float | None
    position_bias: float | None = Field(description="share of rankings where the first-shown output was ranked best")
    position_chance: float | None = Field(description="that share if position did not matter: mean(1 / k)")
    n_position: int
    rolling_gold_agreement: float | None = Field(description="agreement over the last gold_window hidden gold tasks")
    screening_agreement: float | None
    screening_flag_agreement: float | None


class TaskAgreementRead(BaseModel):
    """Inter-labeler agreement on one task with overlap."""

    task_id: int
    kind: TaskKind
    overlap: int
    n_labelers: int
    agreement: float | None
    pairs: int
    alpha: float | None


class DayRead(BaseModel):
    """Throughput and agreement on one day."""

    day: date
    rankings: int
    agreement_with_researchers: float | None
    inter_labeler: float | None


class OverviewRead(BaseModel):
    """Counts, overall agreement and the daily series."""

    labelers_by_status: dict[str, int]
    tasks_by_kind: dict[str, int]
    open_tasks: int
    rankings: int
    comparisons: int = Field(description="strict item pairs across all rankings")
    agreement_with_researchers: Interval
    inter_labeler: Interval
    researcher_agreement: Interval = Field(description="researchers with each other on shared gold tasks")
    mean_task_alpha: float | None
    series: list[DayRead]


class MatrixCell(BaseModel):
    agreement: float | None
    n: int


class MatrixRow(BaseModel):
    user_id: int
    username: str
    role: Role
    cells: list[MatrixCell]


class ResearcherRef(BaseModel):
    user_id: int
    username: str


class MatrixRead(BaseModel):
    """Agreement of every ranker (rows) with every researcher (columns), over shared tasks."""

    researchers: list[ResearcherRef]
    rows: list[MatrixRow]


class RankingView(BaseModel):
    """One ranking shown side by side: buckets of completion labels (A, B, ... in task order)."""

    ranking_id: int
    user_id: int
    username: str
    by_researcher: bool
    buckets: list[list[str]]
    agreement_with_researchers: float | None = None


class DisagreementRead(BaseModel):
    """A task in the disagreement queue."""

    task_id: int
    kind: TaskKind
    prompt: str
    completions: list[str]
    agreement: float | None
    alpha: float | None
    rankings: list[RankingView]


class LabelerTaskRead(BaseModel):
    """One gold task: the labeler's ranking next to the researchers'."""

    task_id: int
    kind: TaskKind
    prompt: str
    ranked_at: datetime
    agreement: float | None
    mine: RankingView
    gold: list[RankingView]


class LabelerDetailRead(BaseModel):
    labeler: LabelerAgreementRead
    tasks: list[LabelerTaskRead]


class ScreeningDecisionCreate(BaseModel):
    """A researcher's decision on a labeler waiting for review."""

    approve: bool
    reason: str = Field("", max_length=2000)


class LabelerActionCreate(BaseModel):
    """approve / reject (reason required) / pause / resume a labeler."""

    action: Literal["approve", "reject", "pause", "resume"]
    reason: str = Field("", max_length=2000)


class TaskKindRead(BaseModel):
    id: int
    kind: TaskKind


class ScreeningResultRead(BaseModel):
    """The gate's outcome for one labeler."""

    user_id: int
    status: UserStatus
    ranking_agreement: float | None
    flag_agreement: float | None
    n_tasks: int
