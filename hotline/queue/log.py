"""The queue log: every queue event stored, and exported as Asterisk's ``queue_log`` lines.

The ACD model (:mod:`hotline.queue.acd`) names and fills each record as app_queue does
(ENTERQUEUE, CONNECT, RINGNOANSWER, RINGCANCELED, ABANDON, EXITWITHTIMEOUT, COMPLETECALLER,
COMPLETEAGENT, PAUSE, UNPAUSE, AGENTLOGIN, AGENTLOGOFF, with app_queue's data fields). The
writer stamps each with the wall clock and a key (node and sequence number) and inserts them off
the call path as they come (:func:`run_writer`): a call never waits for the database, and a
kill -9 of the node loses at most the records of its last moments. While the database is away the
records wait in memory (up to ``limit``; beyond that the oldest are dropped and counted, with a
warning) and go in when it is back; a batch whose commit answer was lost is written again and
the key makes the second write a no-op.

:func:`queue_log_line` renders a row as app_queue writes it —
``epoch|callid|queue|agent|event|data1|data2|…`` — so call-centre reporting tools that read
``/var/log/asterisk/queue_log`` read ours (``hotline queue-log`` prints them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import Clock
from hotline.db import metadata
from hotline.queue.acd import QueueEvent

log = logging.getLogger(__name__)

queue_log = sa.Table(  # the migration is 0006
    "queue_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(120), nullable=False, unique=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("call_id", sa.String(100), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("data", sa.String(500), nullable=False),  # the data fields, joined with "|"
    sa.Index("ix_queue_log_call_id", "call_id"),
    sa.Index("ix_queue_log_time", "time"),
)


@dataclass(frozen=True, slots=True)
class LogRow:
    key: str
    time: datetime
    call_id: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]


def queue_log_line(row: LogRow) -> str:
    """app_queue's line: ``epoch|callid|queue|agent|event|data1|…`` (no field has a "|")."""
    fields = (str(int(row.time.timestamp())), row.call_id, row.queue, row.agent, row.event)
    return "|".join(f.replace("|", "/") for f in fields + row.data)


class QueueLog:
    def __init__(
        self,
        engine: AsyncEngine | None,
        clock: Clock,
        node: str,
        queue: str = "hotline",
        limit: int = 100_000,
    ) -> None:
        self.engine, self.clock, self.node, self.queue = engine, clock, node, queue
        self.pending: deque[LogRow] = deque()
        self.limit = limit
        self.dropped = 0
        self.recent: deque[LogRow] = deque(maxlen=1000)  # the latest, for a look without I/O
        self._seq = itertools.count(1)
        self._stamp = f"{int(clock.now().timestamp())}"  # one process's keys never clash
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def add(self, records: Iterable[QueueEvent]) -> list[LogRow]:
        now = self.clock.now()
        rows = [
            LogRow(
                f"{self.node}:{self._stamp}:{next(self._seq)}",
                now,
                r.call_id,
                self.queue,
                r.agent,
                r.event,
                r.data,
            )
            for r in records
        ]
        for row in rows:
            data = "|".join(row.data)
            log.info("queue %s %s agent=%s %s", row.event, row.call_id, row.agent, data)
        self.pending.extend(rows)
        self.recent.extend(rows)
        if rows:
            self._wake.set()
        while len(self.pending) > self.limit:
            self.pending.popleft()
            self.dropped += 1
            if self.dropped in (1, 100, 10_000) or self.dropped % 100_000 == 0:
                log.warning("queue log: %d records dropped (database away too long)", self.dropped)
        return rows

    async def flush(self) -> int:
        """Write what waits; how many rows went in (an error leaves them waiting)."""
        if self.engine is None:
            self.pending.clear()
            return 0
        async with self._lock:
            batch = list(self.pending)
            if not batch:
                return 0
            async with self.engine.begin() as conn:
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                await conn.execute(
                    insert(queue_log).on_conflict_do_nothing(index_elements=["key"]),
                    [
                        {
                            "key": r.key,
                            "time": r.time,
                            "call_id": r.call_id,
                            "queue": r.queue,
                            "agent": r.agent,
                            "event": r.event,
                            "data": "|".join(r.data)[:500],
                        }
                        for r in batch
                    ],
                )
            for _ in batch:
                self.pending.popleft()
            return len(batch)


async def run_writer(queue_log: QueueLog, retry: float = 1.0) -> None:
    """Write records as they come (each batch of records wakes the writer: a kill -9 loses at
    most the records of its last moments); after a failure, again every ``retry`` seconds."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(queue_log._wake.wait(), retry)
        queue_log._wake.clear()
        try:
            await queue_log.flush()
        except Exception as exc:  # the database is away: the records wait
            log.warning(
                "queue log: %d records wait (%s)", len(queue_log.pending), type(exc).__name__
            )
            await asyncio.sleep(retry)


async def read(
    engine: AsyncEngine,
    *,
    call_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[LogRow]:
    query = sa.select(queue_log).order_by(queue_log.c.id)
    if call_id is not None:
        query = query.where(queue_log.c.call_id == call_id)
    if since is not None:
        query = query.where(queue_log.c.time >= since)
    if until is not None:
        query = query.where(queue_log.c.time < until)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_row(r) for r in rows]


def _row(r: sa.RowMapping) -> LogRow:
    data: Sequence[str] = r["data"].split("|") if r["data"] else ()
    return LogRow(
        r["key"], r["time"], r["call_id"], r["queue"], r["agent"], r["event"], tuple(data)
    )


SERVICE_LEVEL_SECONDS = 15  # answered within this long counts for the service level


@dataclass(frozen=True, slots=True)
class Figures:
    answered: int
    abandoned: int
    within: int  # answered within SERVICE_LEVEL_SECONDS

    @property
    def service_level(self) -> float | None:
        """Answered in time over answered and abandoned (None: no call yet)."""
        offered = self.answered + self.abandoned
        return self.within / offered if offered else None


def figures(rows: Iterable[LogRow]) -> Figures:
    """Answered (CONNECT, whose first field is the wait), abandoned (ABANDON), in time."""
    answered = abandoned = within = 0
    for row in rows:
        if row.event == "CONNECT":
            answered += 1
            wait = row.data[0] if row.data else ""
            within += wait.isdigit() and int(wait) <= SERVICE_LEVEL_SECONDS
        elif row.event == "ABANDON":
            abandoned += 1
    return Figures(answered, abandoned, within)


async def figures_since(engine: AsyncEngine, since: datetime) -> Figures:
    """The figures of every node since ``since`` (today's, for the supervisor)."""
    query = sa.select(queue_log.c.event, queue_log.c.data).where(
        queue_log.c.time >= since, queue_log.c.event.in_(("CONNECT", "ABANDON"))
    )
    async with engine.connect() as conn:
        found = (await conn.execute(query)).all()
    rows = (LogRow("", since, "", "", "", r.event, tuple(r.data.split("|"))) for r in found)
    return figures(rows)
