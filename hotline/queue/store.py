"""Where the ACD's state lives: the store port, in-process and Redis adapters.

The port is small on purpose: :meth:`QueueStore.apply` runs a change of the pure model
(:class:`~hotline.queue.acd.Acd`) as one atomic step and returns its outcome;
:meth:`QueueStore.read` looks without changing. ``now`` is wall-clock seconds (the same on every
node, unlike a monotonic clock).

:class:`MemoryQueueStore` is one model behind a lock: the embedded default, for one node.

:class:`RedisQueueStore` is for several nodes on one Redis. The state is kept as one hash per
kind of entity — agents, waiting calls, connected calls — and the figures, with a version number
beside them. A change runs on the node's copy of the model when the version is still the one it
has (else on a model loaded afresh); what it touched (the outcome names it) is committed by a
Lua script that writes those entities only if the version is still the one the change was made
on, and moves the version on; otherwise another node changed the queue meanwhile, and the change
runs again on the fresh state. So every decision — above all a dispatch, which reserves an agent
for a call — is made on the whole current state and lands atomically or not at all: two nodes
never give one call to two agents nor two calls to one agent. A change that touches nothing
writes nothing. The decisions stay in the pure model (one source of truth, tested on both
stores); the costs — a version read per change, a full load after another node's change — are
measured in ``bench/acd_bench.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hotline.errors import SharedStateUnavailable
from hotline.queue.acd import (
    Acd,
    AcdConfig,
    Outcome,
    dump_agent,
    dump_connected,
    dump_waiting,
    load,
    touched,
)
from hotline.state import Keys

log = logging.getLogger(__name__)

T = TypeVar("T")
Change = Callable[[Acd, float], Outcome]


class QueueStore(Protocol):
    """``change`` must name in its outcome every agent and call it touched (the model's
    methods do): a store that shares the state writes only those."""

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


# KEYS: the version, the agents, the waiting and the connected calls, the figures.
# ARGV[1] the version the change was made on; ARGV[2] the change as JSON:
# {"agents": {"set": {id: json}, "del": [id]}, "waiting": …, "connected": …, "meta": {…}}
COMMIT = """
local version = redis.call('GET', KEYS[1]) or '0'
if version ~= ARGV[1] then
  return 0
end
local diff = cjson.decode(ARGV[2])
for i, section in ipairs({'agents', 'waiting', 'connected'}) do
  local part = diff[section]
  for id, value in pairs(part['set']) do
    redis.call('HSET', KEYS[i + 1], id, value)
  end
  for _, id in ipairs(part['del']) do
    redis.call('HDEL', KEYS[i + 1], id)
  end
end
for name, value in pairs(diff['meta']) do
  redis.call('HSET', KEYS[5], name, value)
end
redis.call('INCR', KEYS[1])
return 1
"""
SECTIONS = ("agents", "waiting", "connected")


def _text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _entity(acd: Acd, section: str, ident: str) -> str | None:
    """One agent or call as stored, or None when the model no longer has it there."""
    if section == "agents":
        agent = acd.agents.get(ident)
        return None if agent is None else _text(dump_agent(agent))
    if section == "waiting":
        call = acd.waiting_call(ident)
        return None if call is None else _text(dump_waiting(call))
    talk = acd.connected.get(ident)
    return None if talk is None else _text(dump_connected(talk))


class RedisQueueStore:
    """The ACD's state in Redis, one hash per kind of entity, changed atomically by version."""

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
        self.version_key = keys.acd_version(queue)
        self.keys = [self.version_key, *(keys.acd_part(queue, p) for p in (*SECTIONS, "meta"))]
        self._commit = redis.register_script(COMMIT)
        self._cache: tuple[str, Acd] | None = None  # the model as of a version
        # one change at a time on this node: a change runs on the cached model, which nobody
        # else may see (or change) until its commit has landed or been refused
        self._lock = asyncio.Lock()
        self.conflicts = 0  # commits refused because another node changed the state first
        self.reloads = 0  # full loads (another node's change, or a refused commit)

    async def _version(self) -> str:
        value = await self.redis.get(self.version_key)
        return _str(value) or "0"

    async def _model(self) -> tuple[str, Acd]:
        version = await self._version()
        if self._cache is not None and self._cache[0] == version:
            return self._cache
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self.version_key)
            for key in self.keys[1:]:
                pipe.hgetall(key)
            raw_version, agents, waiting, connected, meta = await pipe.execute()
        self.reloads += 1
        data: dict[str, Any] = {
            "agents": {_str(k): json.loads(v) for k, v in agents.items()},
            "waiting": {_str(k): json.loads(v) for k, v in waiting.items()},
            "connected": {_str(k): json.loads(v) for k, v in connected.items()},
        }
        if meta.get("handle_time") or meta.get(b"handle_time"):
            data["handle_time"] = float(meta.get("handle_time") or meta[b"handle_time"])
        self._cache = (_str(raw_version) or "0", load(self.config, data))
        return self._cache

    async def apply(self, change: Change, now: float) -> Outcome:
        async with self._lock:
            return await self._apply(change, now)

    async def _apply(self, change: Change, now: float) -> Outcome:
        try:
            for attempt in range(self.attempts):
                version, acd = await self._model()
                handle_time = acd.handle_time
                try:
                    outcome = change(acd, now)
                except BaseException:
                    self._cache = None  # a refusal changes nothing; load afresh to be sure
                    raise
                diff = self._diff(acd, outcome, handle_time)
                if diff is None:
                    return outcome
                if await self._commit(keys=self.keys, args=[version, _text(diff)]):
                    self._cache = (str(int(version) + 1), acd)
                    return outcome
                self._cache = None  # made on a stale state: made again on the fresh one
                self.conflicts += 1
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        except RedisError as exc:
            self._cache = None
            raise SharedStateUnavailable(f"queue state: {type(exc).__name__}") from exc
        raise SharedStateUnavailable(f"queue state: {self.attempts} conflicting changes in a row")

    @staticmethod
    def _diff(acd: Acd, outcome: Outcome, handle_time: float) -> dict[str, Any] | None:
        agents, calls = touched(outcome)
        diff: dict[str, Any] = {}
        for section, ids in (("agents", agents), ("waiting", calls), ("connected", calls)):
            part: dict[str, Any] = {"set": {}, "del": []}
            for ident in sorted(ids):
                text = _entity(acd, section, ident)
                if text is None:
                    part["del"].append(ident)
                else:
                    part["set"][ident] = text
            diff[section] = part
        diff["meta"] = (
            {} if acd.handle_time == handle_time else {"handle_time": repr(acd.handle_time)}
        )
        empty = not (agents or calls or diff["meta"])
        return None if empty else diff

    async def read(self, look: Callable[[Acd, float], T], now: float) -> T:
        try:
            async with self._lock:
                _, acd = await self._model()
                return look(acd, now)
        except RedisError as exc:
            raise SharedStateUnavailable(f"queue state: {type(exc).__name__}") from exc

    async def stored(self) -> dict[str, Any]:
        """What Redis holds, as :func:`~hotline.queue.acd.dump` gives it (for checks)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self.keys[1:]:
                pipe.hgetall(key)
            agents, waiting, connected, meta = await pipe.execute()
        out: dict[str, Any] = {
            name: {_str(k): json.loads(v) for k, v in part.items()}
            for name, part in zip(SECTIONS, (agents, waiting, connected), strict=True)
        }
        raw = meta.get("handle_time") or meta.get(b"handle_time")
        out["handle_time"] = float(raw) if raw else None
        return out


def _str(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
