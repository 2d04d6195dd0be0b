"""Shared fixtures: real PostgreSQL and Redis, each test isolated in a schema / key prefix.

The services are the ones ``scripts/setup`` installs and starts. A service that cannot be
reached is a test error with a message saying so, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hotline import db

PG_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://hotline:hotline@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _pg_admin() -> AsyncEngine:
    engine = create_async_engine(PG_URL)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        await engine.dispose()
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc}); run scripts/setup", False)
    return engine


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh, empty schema on the real PostgreSQL; dropped afterwards."""
    admin = await _pg_admin()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def pg_engine(pg_schema: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated schema of its own."""
    engine = db.make_engine(PG_URL, schema=pg_schema)
    await db.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(tmp_path: object) -> AsyncIterator[AsyncEngine]:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path}/hotline.db")
    await db.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> AsyncEngine:
    """The same test on both engines the product supports."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    """The real Redis and a key prefix of this test's own; its keys are deleted afterwards."""
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc}); run scripts/setup", False)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new PostgreSQL database on the test server; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        await admin.dispose()
        pytest.fail(
            f"PostgreSQL at {PG_URL} cannot create a database ({exc}); run scripts/setup", False
        )
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (for a backend running in another process)."""
    async with fresh_database() as url:
        yield url
