"""SLA watch benchmark on the real PostgreSQL: finding the timers due in the next minute among
those of N open tickets, and firing due timers through the job worker with the real handler.

One run, one fresh database, two sizes of the same table: the baseline (``--small`` tickets,
default 2,000) is measured first, then the table grows to ``--tickets`` (default 200,000) and
the same is measured again. Each open ticket is registered and assigned by the aggregate (so it
wants a sign and a handling timer pair, its assign timers dropped), stored through the
repository's row values and given its timer jobs from the watch's own plan, in bulk (the
ticket events are not written: nothing here reads them).

  lookup — ``SELECT … FROM jobs WHERE state = 'due' AND due_at <= now + 1 minute`` (what the
           worker's claim reads), median and p95 over ``--lookups`` instants spread over the
           working week;
  firing — the first ``--fire`` due timers (reminders and overdue marks: notifications,
           overdue events, violations) claimed and run by one worker, concurrency 8, on a clock
           set where they are due.

    .venv/bin/python bench/sla_bench.py [--tickets 200000] [--small 2000] [--fire 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline import db  # noqa: E402
from hotline.clock import FixedClock  # noqa: E402
from hotline.config.settings import RulesSettings, WatchSettings  # noqa: E402
from hotline.jobs import DUE, JobQueue, Worker, jobs  # noqa: E402
from hotline.ticketing.calendar import (  # noqa: E402
    WorkingCalendar,
    library_data,
    parse_office_hours,
)
from hotline.ticketing.model import Actor, Channel, Citizen, Role, TicketType  # noqa: E402
from hotline.ticketing.notices import Notifier  # noqa: E402
from hotline.ticketing.repository import _row_values  # noqa: E402
from hotline.ticketing.service import TicketService  # noqa: E402
from hotline.ticketing.sla import SlaEngine  # noqa: E402
from hotline.ticketing.sla_watch import TIMER, SlaWatch, TimerSync  # noqa: E402
from hotline.ticketing.tables import assignments, tickets  # noqa: E402
from hotline.ticketing.ticket import Ctx, Ticket  # noqa: E402
from hotline.ticketing.users import add_unit, add_user  # noqa: E402
from hotline.ticketing.watch import plan, timer_key  # noqa: E402

PG = os.environ.get("HOTLINE_BENCH_PG", "postgresql+asyncpg://hotline@127.0.0.1:5432/test")
CST = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 11, 16, 8, 30, tzinfo=CST)  # a Monday
SPREAD = dt.timedelta(days=5)  # registrations over the working week
UNITS = [f"unit{i:02d}" for i in range(20)]
CALENDAR = WorkingCalendar(library_data(), parse_office_hours("08:30-12:00,13:30-17:30"))
SLA = SlaEngine(CALENDAR, RulesSettings())
LEADS = WatchSettings()
BATCH = 2000


def made(i: int, total: int, offset: int) -> Ticket:
    at = START + SPREAD * (i / total)
    ctx = Ctx(Actor("agent", Role.AGENT), at, SLA)
    n = offset + i
    t = Ticket.register(
        ctx,
        id=str(uuid.UUID(int=n + 1)),
        number=f"B{n:09d}",
        type=TicketType.COMPLAINT if n % 3 else TicketType.CONSULTATION,
        channel=Channel.PHONE,
        citizen=Citizen("市民", f"139{n:08d}"),
        subject="",
        content="道路破损，请尽快修复",
    )
    later = Ctx(Actor("disp", Role.DISPATCHER), at + dt.timedelta(minutes=20), SLA)
    t.assign(later, [UNITS[n % 20]])
    return t


async def grow(engine: AsyncEngine, start: int, count: int, total: int) -> int:
    """Add ``count`` open tickets (with their assignments and timer jobs); timers written."""
    written = 0
    for first in range(0, count, BATCH):
        rows, parts, timers = [], [], []
        for i in range(first, min(count, first + BATCH)):
            t = made(i, total, start)
            rows.append({"id": t.id, "number": t.number, "version": 0, **_row_values(t)})
            parts += [
                {
                    "id": a.id,
                    "ticket_id": t.id,
                    "unit_id": a.unit_id,
                    "state": a.state.value,
                    "live": a.live,
                    "sign_due": a.sign.due,
                    "handle_due": a.handle.due,
                }
                for a in t.assignments
            ]
            for timer in plan(t, LEADS, CALENDAR):
                timers.append(
                    {
                        "kind": TIMER,
                        "key": timer_key(t.id, timer),
                        "payload": json.dumps({"ticket_id": t.id}),
                        "state": DUE,
                        "due_at": timer.at.astimezone(dt.UTC),
                        "attempts": 0,
                        "max_attempts": 12,
                        "last_error": "",
                        "created_at": START.astimezone(dt.UTC),
                        "ref": t.id,
                    }
                )
        async with engine.begin() as conn:
            await conn.execute(tickets.insert(), rows)
            await conn.execute(assignments.insert(), parts)
            await conn.execute(jobs.insert(), timers)
        written += len(timers)
    async with engine.begin() as conn:
        await conn.execute(sa.text("ANALYZE jobs"))
        await conn.execute(sa.text("ANALYZE tickets"))
    return written


async def lookups(engine: AsyncEngine, n: int) -> tuple[float, float, float]:
    """Median and p95 ms of the next-minute query, and the mean number of timers found."""
    query = (
        sa.select(jobs.c.id, jobs.c.key, jobs.c.due_at)
        .where(jobs.c.state == DUE, jobs.c.due_at <= sa.bindparam("until"))
        .where(jobs.c.due_at > sa.bindparam("since"))
        .order_by(jobs.c.due_at, jobs.c.id)
    )
    times, found = [], []
    async with engine.connect() as conn:
        for k in range(n):
            now = (START + dt.timedelta(days=7) * (k / n)).astimezone(dt.UTC)
            started = time.perf_counter()
            rows = (
                await conn.execute(query, {"since": now, "until": now + dt.timedelta(minutes=1)})
            ).all()
            times.append((time.perf_counter() - started) * 1000)
            found.append(len(rows))
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)], statistics.mean(found)


async def fire(engine: AsyncEngine, count: int) -> tuple[float, int]:
    """Run the first ``count`` due timers through the worker; timers/s and how many ran."""
    async with engine.connect() as conn:
        nth = (
            await conn.execute(
                sa.select(jobs.c.due_at)
                .where(jobs.c.state == DUE, jobs.c.kind == TIMER)
                .order_by(jobs.c.due_at, jobs.c.id)
                .offset(count - 1)
                .limit(1)
            )
        ).scalar_one()
    clock = FixedClock(nth if nth.tzinfo else nth.replace(tzinfo=dt.UTC))
    service = TicketService(
        engine, SLA, clock, "Asia/Shanghai", watch=TimerSync(LEADS, CALENDAR, clock)
    )
    watch = SlaWatch(service, Notifier())
    worker = Worker(JobQueue(engine, clock, "bench"), {TIMER: watch.fire}, concurrency=8)
    started = time.perf_counter()
    ran = 0
    while ran < count and (n := await worker.run_once()):
        ran += n
    return ran / (time.perf_counter() - started), watch.fired


async def main(total: int, small: int, fire_n: int, n_lookups: int) -> None:
    admin = db.make_engine(PG.rsplit("/", 1)[0] + "/postgres").execution_options(
        isolation_level="AUTOCOMMIT"
    )
    name = f"bench_{uuid.uuid4().hex[:10]}"
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = db.make_engine(PG.rsplit("/", 1)[0] + "/" + name, pool_size=10)
    try:
        await db.upgrade(engine)
        for unit in UNITS:
            await add_unit(engine, unit, unit)
            await add_user(engine, f"{unit}-h", Role.UNIT_HANDLER, unit)
            await add_user(engine, f"{unit}-l", Role.UNIT_LEADER, unit)
        for role in (Role.DISPATCHER, Role.SUPERVISOR):
            await add_user(engine, role.value, role)
        results = []
        started = time.perf_counter()
        timers = await grow(engine, 0, small, small)
        built = time.perf_counter() - started
        med, p95, found = await lookups(engine, n_lookups)
        rate, fired = await fire(engine, min(fire_n, timers) // 10)
        results.append((small, timers, built, med, p95, found, rate, fired))
        started = time.perf_counter()
        timers += await grow(engine, small, total - small, total)
        built = time.perf_counter() - started
        med, p95, found = await lookups(engine, n_lookups)
        rate, fired = await fire(engine, fire_n)
        results.append((total, timers, built, med, p95, found, rate, fired))
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    print("SLA watch on PostgreSQL: timers due in the next minute, and due timers fired")
    print(
        f"{'open tickets':>12} {'timer jobs':>10} {'built s':>8} {'next-minute p50 ms':>18} "
        f"{'p95 ms':>7} {'found':>6} {'fired':>6} {'fired/s':>8}"
    )
    for n, t, b, med, p95, found, rate, fired in results:
        print(
            f"{n:12,d} {t:10,d} {b:8.1f} {med:18.2f} {p95:7.2f} {found:6.1f} {fired:6d} "
            f"{rate:8.0f}"
        )
    base, big = results
    print(
        f"  {big[0] // base[0]}x the tickets: lookup p95 {big[4] / base[4]:.2f}x, "
        f"firing rate {big[6] / base[6]:.2f}x the {base[0]:,}-ticket baseline"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument("--fire", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=200)
    a = parser.parse_args()
    asyncio.run(main(a.tickets, a.small, a.fire, a.lookups))
