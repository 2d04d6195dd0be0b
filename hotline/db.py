"""Database engines and migrations: SQLite (embedded default) or PostgreSQL via asyncpg.

Migrations are Alembic scripts in ``hotline/migrations``; they run on both engines. Tests on
PostgreSQL isolate themselves in a schema of their own: :func:`make_engine` puts it first on the
``search_path`` of every connection, so tables and Alembic's version table land there.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hotline.errors import NotMigrated

MIGRATIONS = Path(__file__).with_name("migrations")
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Datetimes read back from SQL as aware values (SQLite returns naive UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def make_engine(
    url: str, *, schema: str | None = None, pool_size: int = 10, timeout: float | None = None
) -> AsyncEngine:
    """An engine; with ``timeout``, no connect, statement or pool checkout waits longer (the
    serving engines; migrations run unbounded)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o640))  # citizen data: not 0644
        busy = {"connect_args": {"timeout": timeout}} if timeout else {}
        return create_async_engine(url, hide_parameters=True, **busy)
    connect_args: dict[str, Any] = {"server_settings": {"search_path": schema}} if schema else {}
    bounds: dict[str, Any] = {}
    if timeout:
        connect_args.update(timeout=timeout, command_timeout=timeout)
        bounds = {"pool_timeout": timeout, "pool_pre_ping": True}  # a restarted server's
    return create_async_engine(  # dead connections are found before a request gets one
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
        hide_parameters=True,  # errors and logs never carry bound values (citizen data, Y-1)
        **bounds,
    )


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    cfg = _config()

    def run(conn: sa.Connection) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def check_migrated(engine: AsyncEngine) -> None:
    """Raise :class:`NotMigrated` unless the database is at the code's head revision."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise NotMigrated(
            f"database is at revision {current or 'none (empty)'}, the code needs {head}; "
            "run `hotline db upgrade` first"
        )


def database_down(exc: BaseException) -> bool:
    """Is this the database being away (refused, gone, over its time bound), not a bad query?"""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | OSError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc.orig, OSError | TimeoutError)
    )
