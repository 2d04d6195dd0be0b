"""The SLA watch: a job's owner reference (a ticket's timers), notifications, violation records
(rule S-5), and a user's phone for SMS alerts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:  # SQLite too
        batch.add_column(sa.Column("ref", sa.String(64), nullable=True))
    op.create_index("ix_jobs_ref", "jobs", ["ref"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("phone", sa.String(32), nullable=False, server_default=""))
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=True),
        sa.Column("ticket_number", sa.String(32), nullable=True),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("read_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("key", name=op.f("uq_notifications_key")),
    )
    op.create_index("ix_notifications_user_id_id", "notifications", ["user_id", "id"])
    op.create_table(
        "violations",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("ticket_number", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(8), nullable=False),
        sa.Column("party", sa.String(8), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=True),
        sa.Column("handler_id", sa.String(64), nullable=True),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("quarter", sa.String(7), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_violations")),
        sa.UniqueConstraint("key", name=op.f("uq_violations_key")),
    )
    for column in ("unit_id", "handler_id", "month"):
        op.create_index(op.f(f"ix_violations_{column}"), "violations", [column])


def downgrade() -> None:
    for column in ("unit_id", "handler_id", "month"):
        op.drop_index(op.f(f"ix_violations_{column}"), "violations")
    op.drop_table("violations")
    op.drop_index("ix_notifications_user_id_id", "notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("phone")
    op.drop_index("ix_jobs_ref", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("ref")
