"""Each agent's messages, numbered: the sequence a console resumes from.

A message for an agent gets the agent's next sequence number and is kept (the last ``keep``),
so a console that reconnects with the last number it saw gets what it missed; one that is
further behind than what is kept gets its current state only (and is told so). The in-process
outbox serves one node; with several nodes the Redis outbox numbers and keeps each agent's
messages in Redis (one Lua script: the number, the list and the publication together) and
every node hears every message on one channel, so an agent's console gets what any node says
of it — the pop from the node that runs the caller, a state change from the node that made it —
and resumes on any node.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio import Redis

from hotline.state import Keys, listen

log = logging.getLogger(__name__)

Message = dict[str, Any]
Subscriber = Callable[[Message], None]
KEEP = 200  # messages kept per agent for a resume
KEEP_SECONDS = 12 * 3600  # Redis: an agent's kept messages go after this long of silence


class Outbox(Protocol):
    async def publish(self, agent_id: str, message: Message) -> Message: ...

    async def since(self, agent_id: str, seq: int) -> list[Message] | None: ...

    async def kept(self, agent_id: str) -> list[Message]: ...

    async def last(self, agent_id: str) -> int: ...

    def subscribe(self, agent_id: str, subscriber: Subscriber) -> Callable[[], None]: ...


class _Subscribers:
    def __init__(self) -> None:
        self._by_agent: dict[str, list[Subscriber]] = {}

    def add(self, agent_id: str, subscriber: Subscriber) -> Callable[[], None]:
        self._by_agent.setdefault(agent_id, []).append(subscriber)

        def cancel() -> None:
            subs = self._by_agent.get(agent_id, [])
            if subscriber in subs:
                subs.remove(subscriber)
            if not subs:
                self._by_agent.pop(agent_id, None)

        return cancel

    def deliver(self, agent_id: str, message: Message) -> None:
        for subscriber in list(self._by_agent.get(agent_id, ())):
            subscriber(message)


class MemoryOutbox:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._seq: dict[str, int] = {}
        self._kept: dict[str, deque[Message]] = {}
        self._subscribers = _Subscribers()

    async def publish(self, agent_id: str, message: Message) -> Message:
        """Number ``message`` for the agent, keep it and hand it to the agent's subscribers."""
        seq = self._seq.get(agent_id, 0) + 1
        self._seq[agent_id] = seq
        numbered = {**message, "seq": seq}
        self._kept.setdefault(agent_id, deque(maxlen=self.keep)).append(numbered)
        self._subscribers.deliver(agent_id, numbered)
        return numbered

    async def since(self, agent_id: str, seq: int) -> list[Message] | None:
        """The messages after ``seq``; None when some of them are no longer kept."""
        return _after(await self.kept(agent_id), seq, self._seq.get(agent_id, 0))

    async def kept(self, agent_id: str) -> list[Message]:
        """The agent's messages still kept, oldest first."""
        return list(self._kept.get(agent_id, ()))

    async def last(self, agent_id: str) -> int:
        return self._seq.get(agent_id, 0)

    def subscribe(self, agent_id: str, subscriber: Subscriber) -> Callable[[], None]:
        return self._subscribers.add(agent_id, subscriber)


def _after(kept: list[Message], seq: int, last: int) -> list[Message] | None:
    if seq >= last:
        return []
    if not kept or kept[0]["seq"] > seq + 1:
        return None
    return [m for m in kept if m["seq"] > seq]


# KEYS: the agent's number, its kept list, the channel; ARGV: the agent, the message as a JSON
# object without "seq" (never empty: it has a "type"), how many to keep, for how many seconds
# (pops carry callers' numbers: the list goes when nothing was said for that long).
PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
local numbered = '{"seq":' .. seq .. ',' .. string.sub(ARGV[2], 2)
redis.call('RPUSH', KEYS[2], numbered)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('PUBLISH', KEYS[3], ARGV[1] .. '\\n' .. numbered)
return numbered
"""


class RedisOutbox:
    """Each agent's numbered messages in Redis, heard by every node (:meth:`run` listens)."""

    def __init__(self, redis: Redis, prefix: str, keep: int = KEEP) -> None:
        self.redis, self.keys, self.keep = redis, Keys(prefix), keep
        self._publish = redis.register_script(PUBLISH)
        self._subscribers = _Subscribers()
        self.listening = asyncio.Event()

    async def publish(self, agent_id: str, message: Message) -> Message:
        body = json.dumps(
            {k: v for k, v in message.items() if k != "seq"}, ensure_ascii=False, default=str
        )
        keys = [
            self.keys.console_seq(agent_id),
            self.keys.console_kept(agent_id),
            self.keys.console_channel,
        ]
        args: list[str | int] = [agent_id, body, self.keep, KEEP_SECONDS]
        numbered = await self._publish(keys=keys, args=args)
        result: Message = json.loads(numbered)
        return result

    async def since(self, agent_id: str, seq: int) -> list[Message] | None:
        return _after(await self.kept(agent_id), seq, await self.last(agent_id))

    async def kept(self, agent_id: str) -> list[Message]:
        raw = await self.redis.lrange(self.keys.console_kept(agent_id), 0, -1)
        return [json.loads(r) for r in raw]

    async def last(self, agent_id: str) -> int:
        value = await self.redis.get(self.keys.console_seq(agent_id))
        return int(value) if value else 0

    def subscribe(self, agent_id: str, subscriber: Subscriber) -> Callable[[], None]:
        return self._subscribers.add(agent_id, subscriber)

    async def run(self) -> None:
        """Hear every node's messages and hand each to this node's subscribers of its agent."""

        def heard(channel: str, text: str) -> None:
            agent_id, _, numbered = text.partition("\n")
            self._subscribers.deliver(agent_id, json.loads(numbered))

        channels = [self.keys.console_channel]
        await listen(self.redis, channels, heard, self.listening, "console outbox")
