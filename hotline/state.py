"""Shared state across backend nodes: in-process memory (embedded default) or Redis.

For now one thing lives here: the calls each node is running an AGI session for, which the
supervisor's wallboard lists. In Redis every node keeps a heartbeat key with a TTL; a call
whose node has stopped beating is left out of the list and swept, so a crashed node does not
leave ghosts. All Redis key names are built in :class:`Keys`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class LiveCall:
    call_id: str
    node: str
    script: str
    caller: str  # masked before it gets here (rule Y-1)
    started: float  # unix time


class LiveCalls(Protocol):
    async def add(self, call: LiveCall) -> None: ...

    async def remove(self, call_id: str) -> None: ...

    async def list(self) -> list[LiveCall]: ...

    async def heartbeat(self, node: str) -> None: ...


class MemoryLiveCalls:
    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}

    async def add(self, call: LiveCall) -> None:
        self._calls[call.call_id] = call

    async def remove(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    async def list(self) -> list[LiveCall]:
        return sorted(self._calls.values(), key=lambda c: c.started)

    async def heartbeat(self, node: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    @property
    def live_calls(self) -> str:
        return f"{self.prefix}calls:live"

    def node(self, node: str) -> str:
        return f"{self.prefix}nodes:{node}"


class RedisLiveCalls:
    def __init__(self, redis: Redis, prefix: str, node_ttl: int = 30) -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self.node_ttl = node_ttl

    async def heartbeat(self, node: str) -> None:
        await self.redis.set(self.keys.node(node), str(time.time()), ex=self.node_ttl)

    async def add(self, call: LiveCall) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.live_calls, call.call_id, json.dumps(asdict(call)))
            pipe.set(self.keys.node(call.node), str(time.time()), ex=self.node_ttl)
            await pipe.execute()

    async def remove(self, call_id: str) -> None:
        await self.redis.hdel(self.keys.live_calls, call_id)

    async def list(self) -> list[LiveCall]:
        raw = await self.redis.hgetall(self.keys.live_calls)
        calls = [LiveCall(**json.loads(v)) for v in raw.values()]
        nodes = sorted({c.node for c in calls})
        beats = await self.redis.mget([self.keys.node(n) for n in nodes]) if nodes else []
        alive = dict(zip(nodes, beats, strict=True))
        stale = [c.call_id for c in calls if alive.get(c.node) is None]
        if stale:
            await self.redis.hdel(self.keys.live_calls, *stale)
        return sorted((c for c in calls if alive.get(c.node) is not None), key=lambda c: c.started)
