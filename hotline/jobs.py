"""Durable work: jobs and timers in the database, and the outbox of domain events.

A **job** is a row (kind, key, payload, due, state, attempts, lease): "fetch this voice message",
later "remind the unit at 16:00", "call the citizen back". It is written with
:func:`enqueue` on the caller's connection — inside the same transaction as the change that
wants it, so the change and its follow-up commit together or not at all (the transactional
outbox) — and is idempotent on (kind, key): enqueueing it again changes nothing. Timers are jobs
with a due time; :func:`reschedule` moves one, :func:`cancel` drops it.

:class:`Worker` claims due jobs for one node — on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so
nodes never wait on each other nor take the same row; on SQLite the claiming ``UPDATE`` is one
statement in a write transaction, which SQLite runs one at a time — and leases them: a node that
dies with a job in hand loses it when the lease ends, and another node (or the same one after a
restart) runs it again. A job that raises is retried at the back-off times on the injected clock
until its attempts are spent, then it is ``dead`` and logged at ERROR; a job whose due time
passed while no node ran fires late, never not at all. Handlers therefore run *at least once*
and are written to be idempotent by job key (the event id for an event's handler).

**Domain events** (:class:`Event`) go through the same table: :class:`Outbox` maps an event's
type to the handler kinds registered for it (in one place, :mod:`hotline.handlers`) and writes
one job per handler, keyed by the event's id, in the transaction that produced the event.
Delivery after the commit is the worker's; :meth:`Worker.poke` wakes it at once.

Why not procrastinate: it is PostgreSQL-only (psycopg 3) and the backend also runs embedded on
SQLite; this module is the small part of it we need, over the SQLAlchemy Core we already use.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hotline.background import backoff
from hotline.clock import Clock
from hotline.db import as_utc, metadata

log = logging.getLogger(__name__)

TZ = sa.DateTime(timezone=True)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # due | running | done | dead
    sa.Column("due_at", TZ, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("lease_until", TZ, nullable=True),
    sa.Column("owner", sa.String(100), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("done_at", TZ, nullable=True),
    sa.Column("ref", sa.String(64), nullable=True),  # 0008: what it belongs to (a ticket)
    sa.UniqueConstraint("kind", "key"),
    sa.Index("ix_jobs_state_due_at", "state", "due_at"),
    sa.Index("ix_jobs_ref", "ref"),
)

DUE, RUNNING, DONE, DEAD = "due", "running", "done", "dead"
MAX_ATTEMPTS = 12
RETRY_FIRST, RETRY_TOP = 2.0, 600.0  # seconds: 2, 4, 8 … at most 10 minutes apart


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int  # this run included
    max_attempts: int
    due_at: dt.datetime


def _insert(conn: AsyncConnection) -> Any:
    return pg_insert(jobs) if conn.dialect.name == "postgresql" else sqlite_insert(jobs)


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    key: str,
    payload: Mapping[str, Any],
    due: dt.datetime,
    *,
    now: dt.datetime | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    ref: str | None = None,
) -> bool:
    """Add a job in the caller's transaction; False when (kind, key) is already there.
    ``ref``: what the job belongs to (a ticket's timers are found and kept in step by it)."""
    stmt = (
        _insert(conn)
        .values(
            kind=kind,
            key=key[:200],
            payload=json.dumps(dict(payload), ensure_ascii=False),
            state=DUE,
            due_at=due.astimezone(dt.UTC),  # SQLite keeps no offset: every time in UTC
            attempts=0,
            max_attempts=max_attempts,
            last_error="",
            created_at=(now or due).astimezone(dt.UTC),
            ref=ref,
        )
        .on_conflict_do_nothing(index_elements=["kind", "key"])
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount == 1)


async def reschedule(conn: AsyncConnection, kind: str, key: str, due: dt.datetime) -> bool:
    """Move a timer that has not run yet (a deadline moved); False when there is none."""
    result = await conn.execute(
        jobs.update()
        .where(jobs.c.kind == kind, jobs.c.key == key, jobs.c.state == DUE)
        .values(due_at=due.astimezone(dt.UTC))
    )
    return bool(result.rowcount == 1)


async def cancel(conn: AsyncConnection, kind: str, key: str) -> bool:
    """Drop a timer that has not run yet (the stage was done in time)."""
    result = await conn.execute(
        jobs.delete().where(jobs.c.kind == kind, jobs.c.key == key, jobs.c.state == DUE)
    )
    return bool(result.rowcount == 1)


# -- domain events and the outbox ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """A domain event: its type name, a unique id (handlers are idempotent by it), its data."""

    type: str
    id: str
    data: Mapping[str, Any] = field(default_factory=dict)


class Outbox:
    """Writes, for every event, one job per handler kind registered for its type."""

    def __init__(self, routes: Mapping[str, Sequence[str]], clock: Clock) -> None:
        self.routes = {t: tuple(kinds) for t, kinds in routes.items()}
        self.clock = clock
        self.on_commit: Callable[[], None] = lambda: None  # the local worker's poke

    async def publish(self, conn: AsyncConnection, events: Sequence[Event]) -> int:
        now = self.clock.now()
        written = 0
        for event in events:
            for kind in self.routes.get(event.type, ()):
                payload = {"event": event.type, "id": event.id, **event.data}
                written += await enqueue(conn, kind, event.id, payload, now, now=now)
        return written


# -- the worker --------------------------------------------------------------------------------

Handler = Callable[[Job], Awaitable[None]]


class JobQueue:
    """Claims, completes and fails jobs for one node (the SQL, apart from the loop)."""

    def __init__(self, engine: AsyncEngine, clock: Clock, node: str, lease: float = 60.0) -> None:
        self.engine, self.clock, self.node, self.lease = engine, clock, node, lease

    async def claim(self, kinds: Sequence[str], limit: int) -> list[Job]:
        now = self.clock.now().astimezone(dt.UTC)  # SQLite compares text: UTC
        ready = sa.or_(
            sa.and_(jobs.c.state == DUE, jobs.c.due_at <= now),
            sa.and_(jobs.c.state == RUNNING, jobs.c.lease_until < now),  # its node died
        )
        pick = (
            sa.select(jobs.c.id)
            .where(ready, jobs.c.kind.in_(list(kinds)))
            .order_by(jobs.c.due_at, jobs.c.id)
            .limit(limit)
        )
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            rows = (
                await conn.execute(
                    jobs.update()
                    .where(jobs.c.id.in_(pick.scalar_subquery()))
                    .values(
                        state=RUNNING,
                        owner=self.node,
                        attempts=jobs.c.attempts + 1,
                        lease_until=now + dt.timedelta(seconds=self.lease),
                    )
                    .returning(
                        jobs.c.id,
                        jobs.c.kind,
                        jobs.c.key,
                        jobs.c.payload,
                        jobs.c.attempts,
                        jobs.c.max_attempts,
                        jobs.c.due_at,
                    )
                )
            ).all()
        return sorted(
            (
                Job(
                    r.id,
                    r.kind,
                    r.key,
                    json.loads(r.payload),
                    r.attempts,
                    r.max_attempts,
                    as_utc(r.due_at),
                )
                for r in rows
            ),
            key=lambda j: (j.due_at, j.id),
        )

    async def complete(self, job: Job) -> bool:
        """Done — if this node still holds it (a lease that ran out may have passed it on)."""
        return await self.complete_all([job]) == 1

    async def complete_all(self, done: Sequence[Job]) -> int:
        """Mark these done in one statement; how many this node still held."""
        if not done:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                jobs.update()
                .where(
                    jobs.c.id.in_([j.id for j in done]),
                    jobs.c.owner == self.node,
                    jobs.c.state == RUNNING,
                )
                .values(state=DONE, done_at=self.clock.now().astimezone(dt.UTC), lease_until=None)
            )
        return int(result.rowcount)

    async def fail(self, job: Job, error: str) -> dt.datetime | None:
        """Back to due at the next back-off time, or dead when its attempts are spent; the
        time it is due again (None: dead)."""
        now = self.clock.now().astimezone(dt.UTC)
        if job.attempts >= job.max_attempts:
            state, due = DEAD, None
        else:
            delay = backoff(RETRY_FIRST, job.attempts, top=RETRY_TOP)[-1]
            state, due = DUE, now + dt.timedelta(seconds=delay)
        async with self.engine.begin() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id, jobs.c.owner == self.node, jobs.c.state == RUNNING)
                .values(
                    state=state,
                    due_at=due or job.due_at,
                    lease_until=None,
                    last_error=error[:500],
                    done_at=now if due is None else None,
                )
            )
        return due


class Worker:
    """Runs the registered handlers on due jobs, ``concurrency`` at a time, until closed."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        poll: float = 1.0,
        concurrency: int = 4,
        timeout: float = 50.0,
    ) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.poll = poll
        self.concurrency = concurrency
        self.timeout = timeout  # a handler's bound; below the lease, so no job runs twice at once
        self._wake = asyncio.Event()
        self._away = False
        self.done = self.failed = 0

    def poke(self) -> None:
        """Something was just committed: look now, not at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                ran = await self.run_once()
                if self._away:
                    log.info("jobs: claiming again")
                    self._away = False
            except Exception as exc:  # the database is away: the jobs wait there for us
                if not self._away:
                    log.warning("jobs: cannot claim (%s); trying on", type(exc).__name__)
                    self._away = True
                ran = 0
            if ran:
                continue  # there may be more due
            self._wake.clear()
            sleep = asyncio.ensure_future(self.queue.clock.sleep(self.poll))
            wake = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleep, wake}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                wake.cancel()

    async def run_once(self) -> int:
        """Claim one batch of due jobs and run them; how many ran."""
        claimed = await self.queue.claim(list(self.handlers), self.concurrency)
        ran = await asyncio.gather(*(self._run(job) for job in claimed))
        done = [job for job, ok in zip(claimed, ran, strict=True) if ok]
        try:
            await self.queue.complete_all(done)
        except Exception:
            log.warning("jobs: %d ran; marking them done failed (they may run again)", len(done))
            return len(claimed)
        self.done += len(done)
        return len(claimed)

    async def _run(self, job: Job) -> bool:
        """Run one job's handler; True when it succeeded (marked done with its batch)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.handlers[job.kind](job)
        except Exception as exc:
            self.failed += 1
            error = f"{type(exc).__name__}: {exc}"
            try:
                due = await self.queue.fail(job, error)
            except Exception:
                log.warning("job %s %s failed; its lease will pass it on", job.kind, job.key)
                return False
            if due is None:
                log.error(
                    "job %s %s is dead after %d attempts: %s",
                    job.kind,
                    job.key,
                    job.attempts,
                    type(exc).__name__,
                )
            else:
                log.warning(
                    "job %s %s: attempt %d failed (%s); again at %s",
                    job.kind,
                    job.key,
                    job.attempts,
                    type(exc).__name__,
                    due.isoformat(),
                )
            return False
        return True


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """Jobs by state (for /readyz and /metrics)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state))
        ).all()
    return {str(state): int(n) for state, n in rows}
