"""Live calls in shared state: in-process memory and the real Redis."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from hotline.state import LiveCall, MemoryLiveCalls, RedisLiveCalls


def call(i: int, node: str = "node-a") -> LiveCall:
    return LiveCall(
        call_id=f"c{i}", node=node, script="ivr", caller="138****0000", started=1000.0 + i
    )


async def test_memory_live_calls_add_list_remove() -> None:
    live = MemoryLiveCalls()
    await live.add(call(2))
    await live.add(call(1))
    assert [c.call_id for c in await live.list()] == ["c1", "c2"]
    await live.remove("c1")
    assert [c.call_id for c in await live.list()] == ["c2"]


async def test_redis_live_calls_are_shared_between_nodes(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    node_a = RedisLiveCalls(client, prefix)
    node_b = RedisLiveCalls(client, prefix)
    await node_a.add(call(1, "node-a"))
    await node_b.add(call(2, "node-b"))
    assert [c.call_id for c in await node_a.list()] == ["c1", "c2"]
    await node_b.remove("c2")
    assert [(c.call_id, c.node) for c in await node_a.list()] == [("c1", "node-a")]
    assert await client.exists(prefix + "calls:live") == 1  # keys carry the test's prefix


async def test_calls_of_a_node_that_stopped_beating_are_swept(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    live = RedisLiveCalls(client, prefix, node_ttl=1)
    await live.add(call(1, "crashed"))
    await RedisLiveCalls(client, prefix, node_ttl=30).add(call(2, "alive"))
    await asyncio.sleep(1.3)
    assert [c.call_id for c in await live.list()] == ["c2"]
    assert await client.hexists(prefix + "calls:live", "c1") == 0
