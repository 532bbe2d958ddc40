"""The vocabulary of the data model: roles, statuses and kinds (stored as strings with CHECK constraints)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    labeler = "labeler"
    researcher = "researcher"
    admin = "admin"


class UserStatus(enum.StrEnum):
    screening = "screening"
    active = "active"
    pending_review = "pending_review"
    paused = "paused"
    suspended = "suspended"
    rejected = "rejected"


class Split(enum.StrEnum):
    train = "train"
    validation = "validation"
    eval = "eval"


class PromptSource(enum.StrEnum):
    import_ = "import"
    labeler = "labeler"
    api = "api"
    redteam = "redteam"


class ModelKind(enum.StrEnum):
    base = "base"
    """A pretrained model registered to be fine-tuned (`models add --kind base`); never sampled for labeling."""
    sft = "sft"
    reward = "reward"
    policy = "policy"


class TaskKind(enum.StrEnum):
    production = "production"
    gold = "gold"
    screening = "screening"
    eval = "eval"


class TaskType(enum.StrEnum):
    """What a task asks for; independent of its kind (production, gold, screening, eval)."""

    ranking = "ranking"
    """Rank the task's 4-9 outputs."""
    demonstration = "demonstration"
    """Write the assistant's answer to the conversation (or rewrite one of the task's sampled outputs)."""


class DemonstrationStatus(enum.StrEnum):
    submitted = "submitted"
    accepted = "accepted"
    rejected = "rejected"


class DemonstrationOrigin(enum.StrEnum):
    written = "written"
    """Written from scratch."""
    rewritten = "rewritten"
    """Started from one of the task's sampled outputs and edited."""


class TaskStatus(enum.StrEnum):
    open = "open"
    complete = "complete"
    archived = "archived"


class AssignmentStatus(enum.StrEnum):
    active = "active"
    submitted = "submitted"
    expired = "expired"
    skipped = "skipped"


class JobKind(enum.StrEnum):
    """Kinds of background job; each has a params model in app.schemas.jobs.JOB_KINDS and a handler in
    trainer/jobs/."""

    sample = "sample"
    train_sft = "train_sft"
    train_reward = "train_reward"
    train_policy = "train_policy"
    train_dpo = "train_dpo"
    evaluate = "evaluate"
    export = "export"


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class RoundStatus(enum.StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class RoundStep(enum.StrEnum):
    """The steps of one round of the loop, in order."""

    sft = "sft"
    """Only when the round asks for it and new accepted demonstrations exist."""
    sample = "sample"
    rank = "rank"
    reward = "reward"
    policy = "policy"
    evaluate = "evaluate"
    done = "done"


class WorkerState(enum.StrEnum):
    """What a worker last wrote about itself in the workers table."""

    idle = "idle"
    running = "running"
    stopped = "stopped"


class WorkerStatus(enum.StrEnum):
    """What a worker is, as the pages say it: its state, unless it has not been seen for the stale time."""

    idle = "idle"
    running = "running"
    not_responding = "not_responding"
    stopped = "stopped"
