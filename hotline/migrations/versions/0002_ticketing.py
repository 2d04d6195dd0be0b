"""Ticketing core: units, users, tickets, assignments, events, numbers, identity access.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("may_unmask", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_users_unit_id_units")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_users_token_hash")),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("upstream_id", sa.String(128), nullable=True),
        sa.Column("citizen_phone", sa.String(32), nullable=False),
        sa.Column("registered_at", TZ, nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("published", sa.Boolean, nullable=False),
        sa.Column("lead_unit", sa.String(64), nullable=True),
        sa.Column("handle_due", TZ, nullable=True),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("number", name=op.f("uq_tickets_number")),
        sa.UniqueConstraint("channel", "upstream_id", name=op.f("uq_tickets_channel_upstream_id")),
    )
    op.create_index(op.f("ix_tickets_citizen_phone"), "tickets", ["citizen_phone"])
    op.create_index(op.f("ix_tickets_registered_at"), "tickets", ["registered_at"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("live", sa.Boolean, nullable=False),
        sa.Column("sign_due", TZ, nullable=False),
        sa.Column("handle_due", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_assignments_ticket_id_tickets")
        ),
    )
    op.create_index(op.f("ix_assignments_ticket_id"), "assignments", ["ticket_id"])
    op.create_index(op.f("ix_assignments_unit_id"), "assignments", ["unit_id"])
    op.create_table(
        "ticket_events",
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(8), nullable=False),
        sa.Column("before", sa.String(32), nullable=False),
        sa.Column("after", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", "seq", name=op.f("pk_ticket_events")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_events_ticket_id_tickets")
        ),
    )
    op.create_table(
        "ticket_numbers",
        sa.Column("day", sa.String(8), nullable=False),
        sa.Column("last", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_ticket_numbers")),
    )
    op.create_table(
        "identity_access",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("why", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_access")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_identity_access_ticket_id_tickets")
        ),
    )
    op.create_index(op.f("ix_identity_access_ticket_id"), "identity_access", ["ticket_id"])


def downgrade() -> None:
    for table in (
        "identity_access",
        "ticket_numbers",
        "ticket_events",
        "assignments",
        "tickets",
        "users",
        "units",
    ):
        op.drop_table(table)
