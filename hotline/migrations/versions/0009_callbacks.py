"""Satisfaction callback campaigns (rules B-1 … B-3): one row per ticket and callback cycle.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("utility", sa.Boolean, nullable=False),
        sa.Column("units", sa.String(500), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("deadline", TZ, nullable=False),
        sa.Column("due_at", TZ, nullable=True),
        sa.Column("base", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("outcomes", sa.Text, nullable=False),
        sa.Column("call_until", TZ, nullable=True),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("last_call_at", TZ, nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_sent_at", TZ, nullable=True),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("done_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    op.create_index("ix_callbacks_state_due_at", "callbacks", ["state", "due_at"])
    op.create_index("ix_callbacks_code_hash", "callbacks", ["code_hash"])
    op.create_index("ix_callbacks_ticket_id", "callbacks", ["ticket_id"])
    op.create_index("ix_callbacks_call_until", "callbacks", ["call_until"])


def downgrade() -> None:
    op.drop_table("callbacks")
