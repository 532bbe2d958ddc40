"""Every table of the data model (DESIGN.md section 2), gathered in one place for Alembic and for callers.

One module per domain, each importing only `app.models.base` (imports run one way: this package's `__init__` is the
only module that knows them all):

* `base`: the declarative base, naming convention, UTC timestamps, enum columns, constants;
* `accounts`: users, login attempts, the audit log, guidelines;
* `labeling`: prompts, the model registry, completions, ranking tasks, assignments, rankings;
* `demonstrations`: written answers to conversations and their review;
* `jobs`: the job queue, schedules, rounds, named leases;
* `agreement`: the agreement aggregate tables (Core);
* `workers`: worker processes.

The vocabulary (roles, statuses, kinds) lives in `app.enums` and is re-exported here for convenience.
"""

from app.enums import (
    AssignmentStatus,
    DemonstrationOrigin,
    DemonstrationStatus,
    JobKind,
    JobStatus,
    ModelKind,
    PromptSource,
    Role,
    RoundStatus,
    RoundStep,
    Split,
    TaskKind,
    TaskStatus,
    TaskType,
    UserStatus,
)
from app.models.accounts import AuditLog, Guideline, LoginAttempt, User
from app.models.agreement import (
    agreement_days,
    agreement_labelers,
    agreement_matrix,
    agreement_tasks,
    agreement_units,
)
from app.models.base import (
    FLAGS,
    MAX_K,
    MAX_OVERLAP,
    MAX_PRIORITY,
    MAX_RATING,
    MIN_K,
    MIN_RATING,
    NAMING_CONVENTION,
    Base,
    UTCDateTime,
    enum_column,
    utcnow,
)
from app.models.demonstrations import Demonstration
from app.models.jobs import Job, Lease, Round, Schedule
from app.models.labeling import (
    Assignment,
    Completion,
    ModelVersion,
    Prompt,
    Ranking,
    RankingItem,
    RankingTask,
    TaskCompletion,
)
from app.models.workers import Worker

__all__ = [
    "FLAGS",
    "MAX_K",
    "MAX_OVERLAP",
    "MAX_PRIORITY",
    "MAX_RATING",
    "MIN_K",
    "MIN_RATING",
    "NAMING_CONVENTION",
    "Assignment",
    "AssignmentStatus",
    "AuditLog",
    "Base",
    "Completion",
    "Demonstration",
    "DemonstrationOrigin",
    "DemonstrationStatus",
    "Guideline",
    "Job",
    "JobKind",
    "JobStatus",
    "Lease",
    "LoginAttempt",
    "ModelKind",
    "ModelVersion",
    "Prompt",
    "PromptSource",
    "Ranking",
    "RankingItem",
    "RankingTask",
    "Role",
    "Round",
    "RoundStatus",
    "RoundStep",
    "Schedule",
    "Split",
    "TaskCompletion",
    "TaskKind",
    "TaskStatus",
    "TaskType",
    "UTCDateTime",
    "User",
    "UserStatus",
    "Worker",
    "agreement_days",
    "agreement_labelers",
    "agreement_matrix",
    "agreement_tasks",
    "agreement_units",
    "enum_column",
    "utcnow",
]
