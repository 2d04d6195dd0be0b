"""What the IVR saw of each call: a journal row per AGI session.

The journal is written after the caller has been handed back to the dialplan, so a slow
database never adds silence to a live call. ``CallJournal`` is the port; the SQL adapter lives in
:mod:`hotline.ivr.journal_sql`, the in-memory one here is for unit tests and the embedded mode.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class CallRecord:
    call_id: str
    script: str
    caller: str
    channel: str
    started_at: dt.datetime
    digits: str = ""
    route: str = ""
    outcome: str = "in-progress"  # routed | hangup | error | cancelled | interrupted
    steps: list[str] = field(default_factory=list)
    ended_at: dt.datetime | None = None
    error: str = ""
    # told of every step (the journal's spool keeps how far a call got, should we be killed)
    observer: Callable[[CallRecord], None] | None = field(default=None, repr=False, compare=False)

    def step(self, name: str) -> None:
        self.steps.append(name)
        if self.observer is not None:
            self.observer(self)


class CallJournal(Protocol):
    async def record(self, call: CallRecord) -> None: ...

    async def recent(self, limit: int = 50) -> list[CallRecord]: ...


class MemoryCallJournal:
    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    async def record(self, call: CallRecord) -> None:
        if all(c.call_id != call.call_id for c in self.calls):
            self.calls.append(call)

    async def recent(self, limit: int = 50) -> list[CallRecord]:
        return list(reversed(self.calls[-limit:]))
