"""Where the ACD's state lives: the store port, in-process and Redis adapters.

The port is small on purpose: :meth:`QueueStore.apply` runs a change of the pure model
(:class:`~hotline.queue.acd.Acd`) as one atomic step and returns its outcome;
:meth:`QueueStore.read` looks without changing. ``now`` is wall-clock seconds (the same on every
node, unlike a monotonic clock).

:class:`MemoryQueueStore` is one model behind a lock: the embedded default, for one node.

:class:`RedisQueueStore` is for several nodes on one Redis. The model's state is one JSON value
(:func:`~hotline.queue.acd.dump`) with a version number beside it. A change reads both in one
transaction, runs on a model loaded from them, and is committed by a Lua script that writes the
new state only if the version is still the one read (and moves it on); otherwise another node
changed the queue meanwhile, and the change runs again on the fresh state. So every decision —
above all a dispatch, which reserves an agent for a call — is made on the whole current state
and lands atomically or not at all: two nodes never give one call to two agents nor two calls
to one agent. A change that changes nothing writes nothing. The decisions stay in the pure model
(one source of truth, its tests cover both stores); the price is that every change moves the
whole state over the wire — measured in ``bench/acd_bench.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hotline.errors import SharedStateUnavailable
from hotline.queue.acd import Acd, AcdConfig, Outcome, dump, load
from hotline.state import Keys

log = logging.getLogger(__name__)

T = TypeVar("T")
Change = Callable[[Acd, float], Outcome]


class QueueStore(Protocol):
    async def apply(self, change: Change, now: float) -> Outcome: ...

    async def read(self, look: Callable[[Acd, float], T], now: float) -> T: ...


class MemoryQueueStore:
    def __init__(self, config: AcdConfig | None = None) -> None:
        self.acd = Acd(config)
        self._lock = asyncio.Lock()

    async def apply(self, change: Change, now: float) -> Outcome:
        async with self._lock:
            return change(self.acd, now)

    async def read(self, look: Callable[[Acd, float], T], now: float) -> T:
        async with self._lock:
            return look(self.acd, now)


# KEYS[1] the state, KEYS[2] its version; ARGV[1] the version read, ARGV[2] the new state.
COMMIT = """
local version = redis.call('GET', KEYS[2]) or '0'
if version ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
"""


class RedisQueueStore:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        config: AcdConfig | None = None,
        queue: str = "hotline",
        attempts: int = 200,
    ) -> None:
        self.redis, self.config, self.attempts = redis, config, attempts
        keys = Keys(prefix)
        self.state_key, self.version_key = keys.acd_state(queue), keys.acd_version(queue)
        self._commit = redis.register_script(COMMIT)
        self.conflicts = 0  # commits refused because another node changed the state first

    async def _load(self) -> tuple[Acd, str, str]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self.state_key)
            pipe.get(self.version_key)
            raw, version = await pipe.execute()
        text = raw.decode() if isinstance(raw, bytes) else (raw or "")
        if isinstance(version, bytes):
            version = version.decode()
        acd = load(self.config, json.loads(text)) if text else Acd(self.config)
        return acd, text, str(version or "0")

    async def apply(self, change: Change, now: float) -> Outcome:
        try:
            for attempt in range(self.attempts):
                acd, before, version = await self._load()
                outcome = change(acd, now)  # a refusal (AgentStateError) changes nothing
                after = json.dumps(dump(acd), separators=(",", ":"))
                if after == before:
                    return outcome
                keys = [self.state_key, self.version_key]
                if await self._commit(keys=keys, args=[version, after]):
                    return outcome
                self.conflicts += 1
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        except RedisError as exc:
            raise SharedStateUnavailable(f"queue state: {type(exc).__name__}") from exc
        raise SharedStateUnavailable(f"queue state: {self.attempts} conflicting changes in a row")

    async def read(self, look: Callable[[Acd, float], T], now: float) -> T:
        try:
            acd, _, _ = await self._load()
        except RedisError as exc:
            raise SharedStateUnavailable(f"queue state: {type(exc).__name__}") from exc
        return look(acd, now)
