"""Durable jobs and timers (the outbox's deliveries too), and agents' log-ins as the source of
truth behind the shared state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("done_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_jobs_kind_key")),
    )
    op.create_index("ix_jobs_state_due_at", "jobs", ["state", "due_at"])
    op.create_table(
        "agent_sessions",
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("extension", sa.String(16), nullable=False),
        sa.Column("since", TZ, nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_sessions")),
    )


def downgrade() -> None:
    op.drop_table("agent_sessions")
    op.drop_index("ix_jobs_state_due_at", "jobs")
    op.drop_table("jobs")
