"""Repeat requests are linked in a column (D-6); deadlines may be unknown (C-2 calendar gap).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("repeat_of", sa.String(36), nullable=True))
        batch.create_index(op.f("ix_tickets_repeat_of"), ["repeat_of"])
    with op.batch_alter_table("assignments") as batch:
        batch.alter_column("sign_due", existing_type=TZ, nullable=True)
        batch.alter_column("handle_due", existing_type=TZ, nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.alter_column("handle_due", existing_type=TZ, nullable=False)
        batch.alter_column("sign_due", existing_type=TZ, nullable=False)
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index(op.f("ix_tickets_repeat_of"))
        batch.drop_column("repeat_of")
