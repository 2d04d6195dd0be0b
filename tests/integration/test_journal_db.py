"""The call journal and migrations, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline import db
from hotline.ivr.journal import CallRecord
from hotline.ivr.journal_sql import SqlCallJournal
from tests.conftest import PG_URL

T0 = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)


async def test_journal_rows_round_trip(engine: AsyncEngine) -> None:
    journal = SqlCallJournal(engine)
    for i in range(3):
        await journal.record(
            CallRecord(
                call_id=f"c{i}",
                script="ivr",
                caller="13800138000",
                channel="PJSIP/x",
                started_at=T0 + dt.timedelta(minutes=i),
                digits=str(i),
                route="help",
                outcome="routed",
                steps=["answer", "welcome"],
                ended_at=T0 + dt.timedelta(minutes=i, seconds=9),
            )
        )
    rows = await journal.recent(2)
    assert [r.call_id for r in rows] == ["c2", "c1"]  # newest first, limited
    assert rows[0].steps == ["answer", "welcome"]
    assert rows[0].started_at == T0 + dt.timedelta(minutes=2)
    assert rows[0].ended_at is not None and rows[0].ended_at.tzinfo is not None


async def test_migrated_database_is_at_head(engine: AsyncEngine) -> None:
    assert await db.current_revision(engine) == db.head_revision()
    await db.check_migrated(engine)  # does not raise


async def test_empty_postgres_schema_is_not_migrated(pg_schema: str) -> None:
    engine = db.make_engine(PG_URL, schema=pg_schema)
    try:
        with pytest.raises(db.NotMigrated, match="hotline db upgrade"):
            await db.check_migrated(engine)
        await db.upgrade(engine)
        await db.upgrade(engine)  # idempotent
        await db.check_migrated(engine)
    finally:
        await engine.dispose()


async def test_schemas_isolate_tests_from_each_other(
    pg_engine: AsyncEngine, pg_schema: str
) -> None:
    async with pg_engine.connect() as conn:
        where = (await conn.execute(sa.text("SELECT current_schema()"))).scalar_one()
        tables = (
            (
                await conn.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    ),
                    {"s": pg_schema},
                )
            )
            .scalars()
            .all()
        )
    assert where == pg_schema
    assert {"ivr_calls", "alembic_version"} <= set(tables)


def test_the_embedded_database_file_is_not_world_readable(tmp_path: object) -> None:
    import os
    import stat
    from pathlib import Path

    path = Path(str(tmp_path)) / "var" / "hotline.db"
    db.make_engine(f"sqlite+aiosqlite:///{path}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # citizen data (rule Y-1)
