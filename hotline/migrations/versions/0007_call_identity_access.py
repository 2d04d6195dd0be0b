"""Rule Y-1 for calls: every screen pop that shows a caller's number to an agent, on record
(the pop may come before any ticket of the call exists); a ticket keeps the call it was
registered on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_identity_access",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("why", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_identity_access")),
    )
    op.create_index("ix_call_identity_access_call_id", "call_identity_access", ["call_id"])
    with op.batch_alter_table("tickets") as batch:  # SQLite too
        batch.add_column(sa.Column("call_id", sa.String(128), nullable=True))
    op.create_index(op.f("ix_tickets_call_id"), "tickets", ["call_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tickets_call_id"), "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("call_id")
    op.drop_index("ix_call_identity_access_call_id", "call_identity_access")
    op.drop_table("call_identity_access")
