"""job kinds without a CHECK constraint: a new job kind is a registry entry, not a migration

The worker's registry (trainer/jobs) and the web side's params models (app.schemas.jobs.JOB_KINDS) decide which kinds
exist; the database keeps the kind as a string. Task kinds, statuses and roles keep their CHECK constraints.

Revision ID: 5d1f0a7c2b3e
Revises: c63403a12f8a
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d1f0a7c2b3e"
down_revision: str | None = "c63403a12f8a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = ("sample", "train_reward", "train_policy", "evaluate", "export")


def _kind(constraint: bool) -> sa.Enum:
    return sa.Enum(*_KINDS, name="jobkind", native_enum=False, create_constraint=constraint, length=20)


def upgrade() -> None:
    for table in ("jobs", "schedules"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_jobkind"), type_="check")


def downgrade() -> None:
    for table in ("jobs", "schedules"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint("jobkind", sa.column("kind").in_(_KINDS))
