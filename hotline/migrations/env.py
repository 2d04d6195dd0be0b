"""Alembic environment: always runs on a connection handed in by :func:`hotline.db.upgrade`."""

from __future__ import annotations

from alembic import context

from hotline.callbacks import store  # noqa: F401
from hotline.db import metadata
from hotline.ivr import journal_sql  # noqa: F401  (registers its tables on the metadata)
from hotline.ticketing import tables  # noqa: F401

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `hotline db upgrade`, not the alembic command")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
