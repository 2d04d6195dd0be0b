"""Each agent's messages, numbered: the sequence a console resumes from.

A message for an agent gets the agent's next sequence number and is kept (the last ``keep``),
so a console that reconnects with the last number it saw gets what it missed; one that is
further behind than what is kept gets its current state only (and is told so). The in-process
outbox serves one node; the port is what a shared one (Redis) will fill for several nodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

Message = dict[str, Any]
Subscriber = Callable[[Message], None]
KEEP = 200  # messages kept per agent for a resume


class Outbox(Protocol):
    async def publish(self, agent_id: str, message: Message) -> Message: ...

    async def since(self, agent_id: str, seq: int) -> list[Message] | None: ...

    async def last(self, agent_id: str) -> int: ...

    def subscribe(self, agent_id: str, subscriber: Subscriber) -> Callable[[], None]: ...


class MemoryOutbox:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._seq: dict[str, int] = {}
        self._kept: dict[str, deque[Message]] = {}
        self._subscribers: dict[str, list[Subscriber]] = {}

    async def publish(self, agent_id: str, message: Message) -> Message:
        """Number ``message`` for the agent, keep it and hand it to the agent's subscribers."""
        seq = self._seq.get(agent_id, 0) + 1
        self._seq[agent_id] = seq
        numbered = {**message, "seq": seq}
        self._kept.setdefault(agent_id, deque(maxlen=self.keep)).append(numbered)
        for subscriber in list(self._subscribers.get(agent_id, ())):
            subscriber(numbered)
        return numbered

    async def since(self, agent_id: str, seq: int) -> list[Message] | None:
        """The messages after ``seq``; None when some of them are no longer kept."""
        last = self._seq.get(agent_id, 0)
        if seq >= last:
            return []
        kept = self._kept.get(agent_id, deque())
        if not kept or kept[0]["seq"] > seq + 1:
            return None
        return [m for m in kept if m["seq"] > seq]

    async def last(self, agent_id: str) -> int:
        return self._seq.get(agent_id, 0)

    def subscribe(self, agent_id: str, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.setdefault(agent_id, []).append(subscriber)

        def cancel() -> None:
            subs = self._subscribers.get(agent_id, [])
            if subscriber in subs:
                subs.remove(subscriber)
            if not subs:
                self._subscribers.pop(agent_id, None)

        return cancel
