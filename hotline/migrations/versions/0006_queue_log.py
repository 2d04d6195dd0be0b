"""The queue log: every queue event, as app_queue's queue_log records; agents' skills kept
with their log-ins.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_log",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("call_id", sa.String(100), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("data", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_log")),
        sa.UniqueConstraint("key", name=op.f("uq_queue_log_key")),
    )
    op.create_index("ix_queue_log_call_id", "queue_log", ["call_id"])
    op.create_index("ix_queue_log_time", "queue_log", ["time"])
    with op.batch_alter_table("agent_sessions") as batch:  # SQLite too
        batch.add_column(sa.Column("skills", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("agent_sessions") as batch:
        batch.drop_column("skills")
    op.drop_index("ix_queue_log_time", "queue_log")
    op.drop_index("ix_queue_log_call_id", "queue_log")
    op.drop_table("queue_log")
