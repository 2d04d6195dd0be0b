"""Agents on duty survive a Redis restart: log-ins are kept in the database and published
again; while Redis is away the database answers (real PostgreSQL/SQLite and real Redis)."""

from __future__ import annotations

import datetime as dt

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import FixedClock
from hotline.queue.presence import DurablePresence, RedisPresence
from hotline.state import Epoch, LiveCall, MemoryLiveCalls, NodeLiveCalls
from tests.backend import free_port

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


async def test_agents_come_back_after_redis_lost_them(
    engine: AsyncEngine, redis: tuple[Redis, str]
) -> None:
    client, prefix = redis
    presence = DurablePresence(engine, RedisPresence(client, prefix), FixedClock(T0))
    await presence.login("agent-1", "8001")
    await presence.login("agent-2", "8002")
    await presence.logout("agent-2")
    assert await presence.agents() == {"agent-1": "8001"}
    epoch = Epoch(client, prefix)
    assert await epoch.check() is True  # first look: marker set
    assert await epoch.check() is False
    await client.delete(*[k async for k in client.scan_iter(match=prefix + "*")])  # a restart
    assert await presence.shared.agents() == {}
    assert await epoch.check() is True  # ... is seen
    assert await presence.restore() == 1
    assert await presence.agents() == {"agent-1": "8001"} and await presence.available() == 1


async def test_while_redis_is_away_the_database_says_who_is_on_duty(
    engine: AsyncEngine,
) -> None:
    away = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}", socket_timeout=0.2, socket_connect_timeout=0.2
    )
    try:
        presence = DurablePresence(engine, RedisPresence(away, "x:"), FixedClock(T0), 0.5)
        await presence.login("agent-3", "8003")  # stored; publishing it fails and is logged
        assert await presence.available() == 1
        assert await presence.agents() == {"agent-3": "8003"}
    finally:
        await away.aclose()


async def test_this_node_registers_its_live_calls_again() -> None:
    shared = MemoryLiveCalls()
    live = NodeLiveCalls(shared)
    call = LiveCall("1796157005.1", "n1", "ivr", "139****0249", 0.0)
    await live.add(call)
    shared._calls.clear()  # the shared state lost them
    assert await live.restore() == 1 and await shared.list() == [call]
    await live.remove(call.call_id)
    assert await live.restore() == 0
