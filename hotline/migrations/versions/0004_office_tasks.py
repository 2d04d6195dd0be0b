"""Office tasks: a voice message becomes a ticket and a call-back task.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "office_tasks",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("done_at", TZ, nullable=True),
        sa.Column("done_by", sa.String(64), nullable=True),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_office_tasks")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_office_tasks_ticket_id_tickets")
        ),
    )
    op.create_index(op.f("ix_office_tasks_ticket_id"), "office_tasks", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("office_tasks")
