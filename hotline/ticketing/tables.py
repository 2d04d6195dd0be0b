"""Tables of the ticketing core (SQLAlchemy Core; the migration is 0002)."""

from __future__ import annotations

import sqlalchemy as sa

from hotline.db import metadata

TZ = sa.DateTime(timezone=True)

units = sa.Table(
    "units",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("contact", sa.String(200), nullable=False, server_default=""),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.id"), nullable=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("may_unmask", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("phone", sa.String(32), nullable=False, server_default=""),  # 0008: for SMS
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("upstream_id", sa.String(128), nullable=True),
    sa.Column("citizen_phone", sa.String(32), nullable=False, index=True),
    sa.Column("registered_at", TZ, nullable=False, index=True),
    sa.Column("closed_at", TZ, nullable=True),
    sa.Column("published", sa.Boolean, nullable=False),
    sa.Column("lead_unit", sa.String(64), nullable=True),
    sa.Column("handle_due", TZ, nullable=True),
    sa.Column("repeat_of", sa.String(36), nullable=True, index=True),  # D-6
    sa.Column("call_id", sa.String(128), nullable=True, index=True),  # 0007: the call it came on
    sa.Column("snapshot", sa.JSON, nullable=False),
    sa.UniqueConstraint("channel", "upstream_id"),  # rule I-2: idempotent intake
)

assignments = sa.Table(
    "assignments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.id"), nullable=False, index=True),
    sa.Column("unit_id", sa.String(64), nullable=False, index=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("live", sa.Boolean, nullable=False),
    sa.Column("sign_due", TZ, nullable=True),  # None: calendar gap (C-2)
    sa.Column("handle_due", TZ, nullable=True),
)

ticket_events = sa.Table(
    "ticket_events",
    metadata,
    sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at", TZ, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(8), nullable=False),
    sa.Column("before", sa.String(32), nullable=False),
    sa.Column("after", sa.String(32), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

ticket_numbers = sa.Table(
    "ticket_numbers",
    metadata,
    sa.Column("day", sa.String(8), primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)

identity_access = sa.Table(  # rule Y-1: every look at a citizen's identity, on record
    "identity_access",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.id"), nullable=False, index=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("at", TZ, nullable=False),
    sa.Column("why", sa.String(500), nullable=False),
)

call_identity_access = sa.Table(  # rule Y-1: every screen pop of a caller's number (0007)
    "call_identity_access",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("at", TZ, nullable=False),
    sa.Column("why", sa.String(500), nullable=False),
    sa.Index("ix_call_identity_access_call_id", "call_id"),
)

office_tasks = sa.Table(  # work for the office that is not a ticket action (voice messages)
    "office_tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.id"), nullable=False, index=True),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("done_at", TZ, nullable=True),
    sa.Column("done_by", sa.String(64), nullable=True),
    sa.Column("note", sa.String(500), nullable=False, server_default=""),
)

notifications = sa.Table(  # what the SLA watch tells a user (0008); the key makes it once
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(250), nullable=False, unique=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # remind | overdue | alert | s6-month …
    sa.Column("ticket_id", sa.String(36), nullable=True),
    sa.Column("ticket_number", sa.String(32), nullable=True),
    sa.Column("text", sa.String(500), nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("read_at", TZ, nullable=True),
    sa.Index("ix_notifications_user_id_id", "user_id", "id"),
)

violations = sa.Table(  # rule S-5: each missed deadline, against a unit (and handler) or the office
    "violations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(250), nullable=False, unique=True),
    sa.Column("ticket_id", sa.String(36), nullable=False),
    sa.Column("ticket_number", sa.String(32), nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("rule", sa.String(8), nullable=False),
    sa.Column("party", sa.String(8), nullable=False),  # unit | office
    sa.Column("unit_id", sa.String(64), nullable=True, index=True),
    sa.Column("handler_id", sa.String(64), nullable=True, index=True),
    sa.Column("due_at", TZ, nullable=False),
    sa.Column("recorded_at", TZ, nullable=False),
    sa.Column("month", sa.String(7), nullable=False, index=True),  # YYYY-MM, city time
    sa.Column("quarter", sa.String(7), nullable=False),  # YYYY-Qn
)
