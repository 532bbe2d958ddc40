"""Jobs, schedules and the model registry: request/response models, and the job kinds the web side can queue.

A job kind is known here by one `JobKindSpec` in `JOB_KINDS`: its params model (validated when the job is queued,
and again by the worker, which hands the parsed object to the kind's handler in `trainer/jobs/`), an example for
the queue form and a one-line description. This module stays torch-free: the web process imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from app.enums import WorkerState, WorkerStatus
from app.errors import InvalidInput
from app.models import MAX_K, MIN_K, JobKind, JobStatus, ModelKind, ModelVersion, Prompt, Split
from app.schemas.dpo import TrainDpoParams
from app.schemas.fields import Flag, Id, Whole
from app.schemas.params import JobParams, RankingFilter, check_files_kept, existing_ids
from app.schemas.sft import TrainSftParams
from app.schemas.training import EvaluateParams, TrainPolicyParams, TrainRewardParams


class SampleParams(JobParams):
    """Params of the sampling job."""

    prompt_ids: list[Id] | None = Field(default=None, min_length=1, max_length=100_000)
    """Exactly these prompts (ids). Give this, or `split`, or `n_unlabeled`."""
    split: Split | None = None
    """Prompts of this split, lowest ids first (with `limit`); with `n_unlabeled` it narrows those."""
    limit: int | None = Field(default=None, ge=1, le=100_000)
    """With `split`: at most this many prompts (default: all of the split)."""
    n_unlabeled: int | None = Field(default=None, ge=1, le=100_000)
    """Up to this many prompts that have no ranking task yet, lowest ids first."""
    k: int = Field(default=4, ge=MIN_K, le=MAX_K)
    """Completions per prompt (4..9)."""
    policy_version: Id | None = None
    """ModelVersion id to sample from; default: the newest policy, else the newest SFT model."""
    temperature: float = Field(default=1.0, ge=0.0, le=5.0)
    """Softmax temperature; 0 is greedy decoding."""
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    """Nucleus sampling mass in (0, 1]."""
    max_new_tokens: int = Field(default=128, ge=1, le=4096)
    """Most tokens generated per completion."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Run seed; the same seed, prompts and model give the same completions on the same device."""
    overlap: int = Field(default=1, ge=1, le=100)
    """How many labelers should rank each new task."""
    priority: int = Field(default=0, ge=-1000, le=1000)
    """Priority of the new tasks in the labelers' pool (higher first)."""
    batch_size: int = Field(default=32, ge=1, le=4096)
    """Sequences per generate call; tasks are written after every batch of prompts."""
    followups: Flag = False
    """Continue multi-turn prompts: a prompt whose metadata lists `followups` (later user turns, e.g. MT-Bench's
    second questions) also gets the next conversation — itself, its first sampled answer, the next user turn — as a
    prompt of its own (same split), sampled later in the same job."""

    @model_validator(mode="after")
    def _one_source(self) -> SampleParams:
        by_ids = self.prompt_ids is not None
        by_unlabeled = self.n_unlabeled is not None
        by_split = self.split is not None and not by_unlabeled
        if by_ids + by_unlabeled + by_split != 1:
            raise ValueError("choose the prompts with exactly one of prompt_ids, split (+ limit) or n_unlabeled")
        if self.limit is not None and not by_split:
            raise ValueError("limit goes with split (n_unlabeled is its own limit)")
        return self

    def check_references(self, session: Session) -> None:
        """The chosen prompts and policy version exist (and the version is not a reward model)."""
        if self.prompt_ids is not None:
            missing = sorted(set(self.prompt_ids) - existing_ids(session, Prompt.id, self.prompt_ids))
            if missing:
                raise InvalidInput(f"params.prompt_ids: no prompt with id {', '.join(map(str, missing[:10]))}")
        if self.policy_version is not None:
            model = session.get(ModelVersion, self.policy_version)
            if model is None or model.kind == ModelKind.reward:
                raise InvalidInput(f"params.policy_version: no SFT or policy model with id {self.policy_version}")
            check_files_kept(model, "policy_version")

    def sampling_record(self) -> dict[str, Any]:
        """The sampling parameters recorded on every completion."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "k": self.k,
        }


class ExportParams(RankingFilter):
    """Params of the export job (the same filters as the export API and `ranklab export`)."""

    format: Literal["pairs", "rankings"] = "pairs"
    """pairs: one line per strict pair (prompt/chosen/rejected, as TRL reads it); rankings: one line per ranking."""
    active_only: bool = False
    """Only rankings by labelers whose account is active (researchers' rankings are always kept)."""
    split: Split | None = None
    """Only prompts of this split."""


P = TypeVar("P", bound=JobParams)


@dataclass(frozen=True)
class JobKindSpec(Generic[P]):
    """What the web side knows of one job kind; the worker side knows it by its module in `trainer/jobs/`."""

    kind: JobKind
    params_model: type[P]
    """Validates the params when the job is queued; the worker parses them again for the handler."""
    example: dict[str, Any]
    """What the queue form's params box starts with."""
    description: str
    """One line for the queue form's help."""


JOB_KINDS: dict[JobKind, JobKindSpec[Any]] = {
    spec.kind: spec
    for spec in (
        JobKindSpec(
            JobKind.sample,
            SampleParams,
            example={"n_unlabeled": 20, "k": 4, "temperature": 0.8, "max_new_tokens": 96},
            description="Sample K completions per prompt from a policy and turn each prompt into one ranking task.",
        ),
        JobKindSpec(
            JobKind.train_sft,
            TrainSftParams,
            example={"epochs": 2, "learning_rate": 2e-5, "packing": True},
            description="Fine-tune a base or SFT model on the accepted demonstrations (loss on the answers only).",
        ),
        JobKindSpec(
            JobKind.train_reward,
            TrainRewardParams,
            example={},
            description="Train a reward model on the accumulated rankings (K-way, InstructGPT style) and evaluate it.",
        ),
        JobKindSpec(
            JobKind.train_policy,
            TrainPolicyParams,
            example={"steps": 64, "batch_size": 64, "kl_coef": 0.02},
            description="Fine-tune a policy against a reward model with PPO, near its SFT model (a KL penalty).",
        ),
        JobKindSpec(
            JobKind.train_dpo,
            TrainDpoParams,
            example={"loss_type": "dpo", "beta": 0.1, "epochs": 1},
            description="Train a policy on the rankings directly with DPO (no reward model; one pass per output).",
        ),
        JobKindSpec(
            JobKind.evaluate,
            EvaluateParams,
            example={"max_prompts": 64, "samples_per_prompt": 2, "human_eval": False},
            description="Compare a policy with its SFT model on eval prompts: reward, win rate, KL, alignment tax.",
        ),
        JobKindSpec(
            JobKind.export,
            ExportParams,
            example={"format": "pairs", "active_only": True, "min_agreement": 0.75},
            description="Write the comparison export (the same lines as the export API) to a file to download.",
        ),
    )
}
"""The job kinds that can be queued. The other JobKind values are refused with a 422 until their runners exist;
`tests/worker/test_registry.py` keeps these kinds equal to the worker's handlers."""


class JobCreate(BaseModel):
    kind: JobKind
    params: dict[str, Any] = Field(default_factory=dict)


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: JobKind
    status: JobStatus
    params: dict[str, Any]
    progress: float
    metrics: list[Any]
    log_tail: str
    error: str | None
    worker_id: str | None
    device: str | None
    heartbeat_at: datetime | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    output_model_id: int | None
    schedule_id: int | None
    created_by_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class WorkerRead(BaseModel):
    """A worker process, idle or busy, as of its last sign of life."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    host: str
    pid: int
    device: str
    kinds: list[str] = Field(description="The job kinds it takes.")
    capabilities: dict[str, Any] = Field(description="What is known of its device (GPU count, name, memory; CPUs).")
    state: WorkerState = Field(description="What the worker last wrote about itself.")
    status: WorkerStatus = Field(description="Its state, or not_responding when not seen for the stale time.")
    current_job_id: int | None
    current_job_kind: JobKind | None
    started_at: datetime
    last_seen_at: datetime
    seen_s_ago: float = Field(description="Seconds since it was last seen.")


class ScheduleCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: JobKind
    params: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = Field(default=None, max_length=100)
    min_new_rankings: Whole | None = Field(default=None, ge=1, le=1_000_000_000)
    enabled: Flag = True


class ScheduleUpdate(BaseModel):
    params: dict[str, Any] | None = None
    cron: str | None = Field(default=None, max_length=100)
    min_new_rankings: Whole | None = Field(default=None, ge=1, le=1_000_000_000)
    enabled: Flag | None = None


class ScheduleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: JobKind
    params: dict[str, Any]
    cron: str | None
    min_new_rankings: int | None
    enabled: bool
    last_run_at: datetime | None
    next_run_at: datetime | None
    last_job_id: int | None
    created_at: datetime


class ModelVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: ModelKind
    name: str
    path: str
    parent_id: int | None
    job_id: int | None
    metrics: dict[str, Any]
    created_at: datetime


class StorageUsageRead(BaseModel):
    category: str
    bytes: int
    entries: int


class StorageRemovalRead(BaseModel):
    what: str = Field(description="checkpoint, model folder, model files or export")
    path: str
    bytes: int
    reason: str
    model_version_id: int | None


class StorageRead(BaseModel):
    """What uses the data folder's disk, and what `ranklab storage --apply` would remove (nothing is removed here)."""

    data_dir: str
    total_bytes: int
    free_bytes: int = Field(description="Free space on the disk that holds the data folder.")
    disk_bytes: int
    database: str
    database_bytes: int
    usage: list[StorageUsageRead]
    removals: list[StorageRemovalRead]
    removable_bytes: int
