"""The fault harness itself (tests/faults.py): its servers start, freeze, stop and come back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis

from tests.faults import (
    PgInstance,
    RedisInstance,
    Timeline,
    alive,
    children,
)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgInstance]:
    with PgInstance() as pg:
        yield pg


async def connect(pg: PgInstance, db: str = "postgres") -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1", port=pg.port, user="postgres", database=db, timeout=2
    )


async def test_postgres_of_its_own_answers_on_a_spare_port(pg: PgInstance) -> None:
    assert pg.port not in (5432,)
    assert pg.url("x") == f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/x"
    conn = await connect(pg)
    try:
        assert await conn.fetchval("SELECT current_user") == "postgres"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SHOW unix_socket_directories") == str(pg.sockets)
    finally:
        await conn.close()
    with open(f"/proc/{pg.pid}/status") as fh:  # the server runs as postgres, not as root
        uid = next(line.split()[1] for line in fh if line.startswith("Uid:"))
    assert int(uid) == pg._uid != os.getuid()


async def test_a_frozen_postgres_times_out_and_answers_again_when_thawed(pg: PgInstance) -> None:
    conn = await connect(pg)
    stopped = pg.freeze()
    try:
        assert pg.pid in stopped and len(stopped) > 1  # its backends too
        with pytest.raises(TimeoutError):  # a session already open
            await conn.fetchval("SELECT 1", timeout=1)
        with pytest.raises(TimeoutError):  # a new one: the kernel accepts, nobody answers
            await asyncpg.connect(
                host="127.0.0.1", port=pg.port, user="postgres", database="postgres", timeout=1
            )
    finally:
        pg.thaw()
        conn.terminate()
    again = await connect(pg)
    try:
        assert await again.fetchval("SELECT 1", timeout=2) == 1
    finally:
        await again.close()


async def test_data_survives_a_stop_and_a_kill9(pg: PgInstance) -> None:
    pg.create_database("harness")
    conn = await connect(pg, "harness")
    await conn.execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')")
    await conn.close()

    pg.stop()
    assert not pg.ready()
    with pytest.raises(OSError):
        await connect(pg, "harness")
    pg.start()
    conn = await connect(pg, "harness")
    assert await conn.fetchval("SELECT v FROM t") == "kept"
    await conn.execute("INSERT INTO t VALUES ('after')")  # committed: survives a crash
    await conn.close()

    backends = children(pg.pid)
    pg.kill9()
    assert backends and not any(alive(p) for p in backends)  # the backends died with it
    pg.start()  # crash recovery
    conn = await connect(pg, "harness")
    try:
        assert sorted(r["v"] for r in await conn.fetch("SELECT v FROM t")) == ["after", "kept"]
    finally:
        await conn.close()
        pg.drop_database("harness")


async def test_redis_of_its_own_loses_everything_on_kill9_and_comes_back() -> None:
    with RedisInstance() as r:
        assert isinstance(r, RedisInstance) and r.port != 6379
        client = Redis.from_url(r.url, decode_responses=True)
        try:
            await client.set("k", "v")
            r.kill9()
            assert not r.ping()
            with pytest.raises(Exception, match=r"(?i)connect|closed|refused"):
                await asyncio.wait_for(client.get("k"), 2)
            r.restart()
            assert await client.get("k") is None  # no persistence: a fresh, empty server
            await client.set("k", "again")
            assert await client.get("k") == "again"
        finally:
            await client.aclose()


def test_agi_gaps_are_the_silences_between_commands() -> None:
    def ev(kind: str, **fields: str) -> dict[str, str]:
        return {"Event": kind, **fields}

    timeline = Timeline(
        [
            (0.0, ev("Newexten", Application="Answer")),
            (0.5, ev("Newexten", Application="AGI")),
            (0.6, ev("AGIExecStart", Command="ANSWER")),
            (0.6, ev("AGIExecEnd", Command="ANSWER")),
            (0.7, ev("AGIExecStart", Command="STREAM FILE a")),
            (5.0, ev("VarSet")),
            (9.0, ev("AGIExecEnd", Command="STREAM FILE a")),
            (12.5, ev("AGIExecStart", Command="STREAM FILE b")),
            (14.0, ev("AGIExecEnd", Command="STREAM FILE b")),
            (14.2, ev("Newexten", Application="GotoIf")),
            (20.0, ev("Hangup")),
        ]
    )
    gaps = [(round(g.seconds, 2), g.after, g.before) for g in timeline.agi_gaps()]
    assert gaps == [
        (0.2, "AGI start", "STREAM FILE a"),  # ANSWER plays nothing
        (3.5, "STREAM FILE a", "STREAM FILE b"),  # the backend kept the caller waiting
        (0.2, "STREAM FILE b", "GotoIf"),  # the session ended: the dialplan goes on
    ]


def test_a_command_that_plays_nothing_is_no_cover_for_silence() -> None:
    timeline = Timeline(
        [
            (0.0, {"Event": "AGIExecEnd", "Command": "STREAM FILE a"}),
            (0.1, {"Event": "AGIExecStart", "Command": "WAIT FOR DIGIT 5000"}),
            (5.1, {"Event": "AGIExecEnd", "Command": "WAIT FOR DIGIT 5000"}),
            (5.1, {"Event": "AGIExecStart", "Command": "SET VARIABLE X 1"}),
            (5.1, {"Event": "AGIExecEnd", "Command": "SET VARIABLE X 1"}),
            (5.2, {"Event": "AGIExecStart", "Command": "GET DATA b 5000 1"}),
        ]
    )
    ((seconds, after, before),) = [
        (round(g.seconds, 2), g.after, g.before) for g in timeline.agi_gaps()
    ]
    assert (seconds, after, before) == (5.2, "STREAM FILE a", "GET DATA b 5000 1")


def test_a_backend_that_never_answers_is_silence_until_the_caller_leaves() -> None:
    events = [
        (0.5, {"Event": "Newexten", "Application": "AGI"}),
        (0.6, {"Event": "AGIExecStart", "Command": "GET DATA x"}),
        (5.6, {"Event": "AGIExecEnd", "Command": "GET DATA x"}),
    ]
    (_, waited) = Timeline(events, end=20.0).agi_gaps()
    assert (waited.seconds, waited.before) == (14.4, "the caller left, still waiting")
    events.append((9.6, {"Event": "HangupRequest"}))  # the caller's BYE reached Asterisk
    (_, waited) = Timeline(events, end=20.0).agi_gaps()
    assert (round(waited.seconds, 2), waited.before) == (4.0, "hangup")
