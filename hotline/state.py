"""Shared state across backend nodes: in-process memory (embedded default) or Redis.

Here: the calls each node is running an AGI session for, which the supervisor's wallboard lists;
every Redis key name of the backend is built in :class:`Keys` (the ACD's store and the IVR's
view of the queue use them too). In Redis every node keeps a heartbeat key with a TTL; a call
whose node has stopped beating is left out of the list and swept, so a crashed node does not
leave ghosts. All Redis key names are built in :class:`Keys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hotline.errors import SharedStateUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


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

    # the ACD (hotline/queue/store.py): the model's state by part, and its version, per queue
    def acd_part(self, queue: str, part: str) -> str:
        return f"{self.prefix}acd:{queue}:{part}"

    def acd_version(self, queue: str) -> str:
        return f"{self.prefix}acd:{queue}:version"

    # the Stasis applications of the nodes alive (hotline/agi/stasis.py adopts the others')
    def app_beat(self, app: str) -> str:
        return f"{self.prefix}apps:{app}"

    # the consoles' outbox (hotline/softphone_bridge/outbox.py): each agent's numbered messages
    def console_seq(self, agent: str) -> str:
        return f"{self.prefix}console:{agent}:seq"

    def console_kept(self, agent: str) -> str:
        return f"{self.prefix}console:{agent}:kept"

    @property
    def console_channel(self) -> str:  # every node hears every agent's messages
        return f"{self.prefix}console:messages"

    # call control asked of the node that runs a call (hotline/softphone_bridge/remote.py)
    @property
    def console_control(self) -> str:
        return f"{self.prefix}console:control"

    def console_reply(self, node: str) -> str:
        return f"{self.prefix}console:reply:{node}"

    # the IVR's view of the queue (hotline/queue/presence.py)
    @property
    def agents_present(self) -> str:
        return f"{self.prefix}agents:present"

    @property
    def estimated_wait(self) -> str:
        return f"{self.prefix}queue:estimated_wait"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}state:epoch"


async def listen(
    redis: Redis,
    channels: Sequence[str],
    handle: Callable[[str, str], None],
    listening: asyncio.Event,
    what: str,
    retry: float = 1.0,
) -> None:
    """Hear ``channels`` for ever — ``handle(channel, text)`` for each message — subscribing
    again when Redis is back; ``listening`` is set while subscribed."""
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(*channels)
            listening.set()
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    handle(_text(item["channel"]), _text(item["data"]))
        except (RedisError, OSError) as exc:  # Redis away: heard again once it is back
            listening.clear()
            log.warning("%s: not listening (%s)", what, type(exc).__name__)
            await asyncio.sleep(retry)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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


class NodeLiveCalls:
    """This node's calls, remembered here as well, so they can be registered again after the
    shared state lost them (a Redis restart); each shared-state call is bounded in time and
    its failure is :class:`SharedStateUnavailable`."""

    def __init__(self, shared: LiveCalls, timeout: float = 0.5) -> None:
        self.shared = shared
        self.timeout = timeout
        self.mine: dict[str, LiveCall] = {}

    async def _bounded(self, work: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(work, self.timeout)
        except (TimeoutError, RedisError) as exc:
            raise SharedStateUnavailable(f"shared state: {type(exc).__name__}") from exc

    async def add(self, call: LiveCall) -> None:
        self.mine[call.call_id] = call
        await self._bounded(self.shared.add(call))

    async def remove(self, call_id: str) -> None:
        self.mine.pop(call_id, None)
        await self._bounded(self.shared.remove(call_id))

    async def list(self) -> list[LiveCall]:
        return await self._bounded(self.shared.list())

    async def heartbeat(self, node: str) -> None:
        await self._bounded(self.shared.heartbeat(node))

    async def restore(self) -> int:
        for call in list(self.mine.values()):
            await self._bounded(self.shared.add(call))
        return len(self.mine)


class Epoch:
    """Tells a Redis that restarted empty from the one we wrote to: a marker key that only a
    restart (or a flush) removes. :meth:`check` is True when the marker was missing (and sets
    it again): shared state must then be rebuilt from its sources of truth."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.key = Keys(prefix).epoch

    async def check(self) -> bool:
        created = await self.redis.set(self.key, str(time.time()), nx=True)
        return bool(created)


class AppBeats:
    """Which nodes' Stasis applications are alive: each node beats every ``ttl`` / 3 seconds;
    a beat that expired is a stopped node, whose waiting callers a live node takes over."""

    def __init__(self, redis: Redis, prefix: str, ttl: float = 5.0) -> None:
        self.redis, self.keys, self.ttl = redis, Keys(prefix), ttl

    async def beat(self, app: str) -> None:
        await self.redis.set(self.keys.app_beat(app), "1", px=int(self.ttl * 1000))

    async def alive(self) -> set[str]:
        pattern = self.keys.app_beat("*")
        cut = len(pattern) - 1
        return {
            (k.decode() if isinstance(k, bytes) else str(k))[cut:]
            async for k in self.redis.scan_iter(match=pattern)
        }

    async def run(self, app: str) -> None:
        while True:
            try:
                await self.beat(app)
            except RedisError as exc:
                log.warning("shared state: no beat for %s (%s)", app, type(exc).__name__)
            await asyncio.sleep(self.ttl / 3)
