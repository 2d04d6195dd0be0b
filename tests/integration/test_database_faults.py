"""The database going away under a request, on the real PostgreSQL: bounded waits, and a
commit whose answer is lost says so (the change may be stored)."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline import db
from hotline.errors import OutcomeUnknown
from hotline.jobs import counts, enqueue
from hotline.ticketing.repository import UnitOfWork
from tests.backend import free_port
from tests.conftest import PG_URL
from tests.integration.test_jobs import T0


async def test_a_commit_whose_connection_dies_is_an_unknown_outcome(
    pg_engine: AsyncEngine, pg_schema: str
) -> None:
    killer = db.make_engine(PG_URL)
    try:
        async with UnitOfWork(pg_engine) as uow:
            await enqueue(uow.conn, "x", "k", {}, T0)
            pid = (await uow.conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            async with killer.begin() as conn:  # the server goes away before the commit
                await conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            with pytest.raises(OutcomeUnknown, match="may or may not be stored"):
                await uow.commit()
    finally:
        await killer.dispose()
    assert await counts(pg_engine) == {}  # here it was not stored; the client cannot know


async def test_a_statement_on_a_frozen_database_ends_at_the_bound() -> None:
    # a listener that accepts and never answers: what a SIGSTOPped server looks like
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    port = free_port()
    server = await asyncio.start_server(silent, "127.0.0.1", port)
    engine = db.make_engine(f"postgresql+asyncpg://u@127.0.0.1:{port}/d", timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        elapsed = time.monotonic() - started
        assert db.database_down(caught.value), type(caught.value)
        print(f"connect to a silent server gave up after {elapsed:.2f} s (bound 0.5 s)")
    finally:
        await engine.dispose()
        server.close()
        await server.wait_closed()
