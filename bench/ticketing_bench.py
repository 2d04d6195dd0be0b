"""Ticketing benchmarks on the real PostgreSQL.

intake — register + assign, offered at a fixed rate (default 200 tickets/s, open loop: every
ticket's latency counts from when it was due to start, so a slow server cannot hide its queue)
through three paths in one run:
  (a) the HTTP API of `hotline serve` (bearer token, JSON, a process of its own),
  (b) the ticket service in this process (no HTTP),
  (c) a raw SQL baseline: the same rows (ticket, events, assignment) written with plain
      INSERT/UPDATE statements, no aggregate and no version check — the floor.
lookup — a caller's open tickets by phone in a table of N tickets (default 1,000,000), p95
over many lookups, through the repository and through the raw SQL query (baseline).

    .venv/bin/python bench/ticketing_bench.py intake [--rate 200] [--seconds 10]
    .venv/bin/python bench/ticketing_bench.py lookup [--tickets 1000000] [--lookups 2000]

Each run creates a database of its own on TEST_DATABASE_URL's server and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotline import db
from hotline.clock import SystemClock
from hotline.config.settings import RulesSettings
from hotline.ticketing.calendar import WorkingCalendar, library_data, parse_office_hours
from hotline.ticketing.model import Role
from hotline.ticketing.service import TicketService
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.tables import assignments, ticket_events, tickets
from hotline.ticketing.users import add_unit, add_user, authenticate
from tests.backend import Backend, free_port

PG_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://hotline:hotline@127.0.0.1:5432/test"
)
CONTENT = "小区门口路灯坏了三天，晚上出行不便，请尽快修复。"


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(name: str, lat: list[float], seconds: float, errors: int, base: float | None) -> float:
    p95 = pct(lat, 95) * 1000
    ratio = f"{p95 / base:6.1f}x" if base else "     - "
    print(
        f"{name:<22} {len(lat) / seconds:8.1f} {pct(lat, 50) * 1000:8.1f} {p95:8.1f} "
        f"{pct(lat, 99) * 1000:8.1f} {errors:7d} {ratio}"
    )
    return p95


async def open_loop(
    rate: float, seconds: float, one: Callable[[int], Awaitable[None]]
) -> tuple[list[float], int, float]:
    """Start one operation every 1/rate s; latency counts from the planned start."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    count = int(rate * seconds)

    async def run(i: int) -> None:
        nonlocal errors
        planned = start + i / rate
        await asyncio.sleep(max(0.0, planned - time.perf_counter()))
        try:
            await one(i)
            latencies.append(time.perf_counter() - planned)
        except Exception as exc:
            errors += 1
            if errors <= 3:
                print(f"  error: {exc!r}", file=sys.stderr)

    await asyncio.gather(*(run(i) for i in range(count)))
    return latencies, errors, time.perf_counter() - start


# -- intake -----------------------------------------------------------------------------------
async def prepare(engine: AsyncEngine) -> dict[str, str]:
    await db.upgrade(engine)
    await add_unit(engine, "water", "市水务局", "0510-1")
    tokens = {}
    for key, role, unit in (
        ("agent", Role.AGENT, None),
        ("dispatcher", Role.DISPATCHER, None),
        ("wh", Role.UNIT_HANDLER, "water"),
        ("wl", Role.UNIT_LEADER, "water"),
    ):
        _, tokens[key] = await add_user(engine, key, role, unit)
    return tokens


def register_payload(i: int) -> dict[str, object]:
    return {
        "type": "help",
        "channel": "phone",
        "content": CONTENT,
        "citizen_name": "市民",
        "citizen_phone": f"139{i:08d}",
    }


async def intake(rate: float, seconds: float) -> None:
    async with scratch_database() as url:
        engine = db.make_engine(url, pool_size=20)
        tokens = await prepare(engine)
        env = {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
            "HOTLINE_SERVER_AGI_PORT": str(free_port()),
            "HOTLINE_LOG_LEVEL": "WARNING",
        }
        backend = Backend(env).start()
        print(
            f"register + assign, offered {rate:g}/s for {seconds:g} s, PostgreSQL, "
            f"{os.cpu_count()} CPUs"
        )
        print(
            f"{'path':<22} {'done/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
            f"{'errors':>7} {'p95/raw':>7}"
        )
        try:
            base = await run_raw(engine, rate, seconds)
            await run_service(engine, tokens, rate, seconds, base)
            await run_http(backend.url, tokens, rate, seconds, base)
        finally:
            backend.stop()
            await engine.dispose()


async def run_raw(engine: AsyncEngine, rate: float, seconds: float) -> float:
    now = dt.datetime.now(dt.UTC)
    snapshot = {"content": CONTENT, "pad": "x" * 1500}

    async def one(i: int) -> None:
        tid = str(uuid.uuid4())
        async with engine.begin() as conn:
            await conn.execute(
                tickets.insert().values(
                    id=tid,
                    number=f"R-{i}-{tid[:6]}",
                    version=0,
                    state="registered",
                    type="help",
                    channel="phone",
                    upstream_id=None,
                    citizen_phone=f"138{i:08d}",
                    registered_at=now,
                    published=False,
                    snapshot=snapshot,
                )
            )
            await conn.execute(
                ticket_events.insert().values(
                    ticket_id=tid,
                    seq=1,
                    at=now,
                    actor="a",
                    role="agent",
                    action="register",
                    rule="I-1",
                    before="",
                    after="registered",
                    data={},
                )
            )
        async with engine.begin() as conn:
            await conn.execute(
                tickets.update()
                .where(tickets.c.id == tid)
                .values(state="assigned", version=1, snapshot=snapshot)
            )
            await conn.execute(
                assignments.insert().values(
                    id=f"{tid}-1",
                    ticket_id=tid,
                    unit_id="water",
                    state="assigned",
                    live=True,
                    sign_due=now,
                    handle_due=now,
                )
            )
            await conn.execute(
                ticket_events.insert().values(
                    ticket_id=tid,
                    seq=2,
                    at=now,
                    actor="d",
                    role="dispatcher",
                    action="assign",
                    rule="D-1",
                    before="registered",
                    after="assigned",
                    data={},
                )
            )

    lat, errors, took = await open_loop(rate, seconds, one)
    return report("raw SQL (baseline)", lat, took, errors, None)


async def run_service(
    engine: AsyncEngine, tokens: dict[str, str], rate: float, seconds: float, base: float
) -> None:
    calendar = WorkingCalendar(library_data(), parse_office_hours("08:30-12:00,13:30-17:30"))
    service = TicketService(
        engine, SlaEngine(calendar, RulesSettings()), SystemClock(), "Asia/Shanghai"
    )
    agent = (await authenticate(engine, tokens["agent"])).actor  # type: ignore[union-attr]
    dispatcher = (await authenticate(engine, tokens["dispatcher"])).actor  # type: ignore[union-attr]

    async def one(i: int) -> None:
        t = (await service.register(agent, register_payload(i))).ticket
        await service.act(dispatcher, t.id, "assign", {"version": t.version, "units": ["water"]})

    lat, errors, took = await open_loop(rate, seconds, one)
    report("service (in process)", lat, took, errors, base)


async def run_http(
    url: str, tokens: dict[str, str], rate: float, seconds: float, base: float
) -> None:
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(token: str, path: str, body: dict[str, object]) -> dict[str, object]:
            async with session.post(
                url + path, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                data = await resp.json()
                if resp.status >= 400:
                    raise RuntimeError(f"{resp.status} {data}")
                return data  # type: ignore[no-any-return]

        async def one(i: int) -> None:
            t = await post(tokens["agent"], "/api/v1/tickets", register_payload(i))
            await post(
                tokens["dispatcher"],
                f"/api/v1/tickets/{t['id']}/actions/assign",
                {"version": t["version"], "units": ["water"]},
            )

        lat, errors, took = await open_loop(rate, seconds, one)
        report("HTTP API (hotline serve)", lat, took, errors, base)


# -- lookup -----------------------------------------------------------------------------------
async def lookup(count: int, lookups: int) -> None:
    async with scratch_database() as url:
        engine = db.make_engine(url, pool_size=4)
        await db.upgrade(engine)
        phones = max(1, count // 3)  # repeat callers: about three tickets per number
        snapshot = json.dumps({"content": CONTENT, "pad": "x" * 1500})
        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("""
                INSERT INTO tickets (id, number, version, state, type, channel, upstream_id,
                    citizen_phone, registered_at, closed_at, published, lead_unit, handle_due,
                    snapshot)
                SELECT md5(g::text), 'B-' || g, 1,
                       CASE WHEN g % 10 < 7 THEN 'closed' WHEN g % 10 < 9 THEN 'assigned'
                            ELSE 'registered' END,
                       'help', 'phone', NULL,
                       '139' || lpad((g % :phones)::text, 8, '0'),
                       now() - (g || ' minutes')::interval, NULL, false, 'water',
                       now() + interval '5 days', CAST(:snapshot AS json)
                FROM generate_series(1, :count) AS g
            """),
                {"phones": phones, "count": count, "snapshot": snapshot},
            )
            await conn.execute(sa.text("ANALYZE tickets"))
        print(
            f"lookup of a caller's open tickets by phone: {count:,} tickets, {phones:,} numbers "
            f"(filled in {time.perf_counter() - started:.0f} s), {lookups} lookups each"
        )
        print(f"{'path':<22} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p95/raw':>7}")
        from hotline.ticketing.queries import OPEN_STATES
        from hotline.ticketing.repository import UnitOfWork

        numbers = [f"139{random.randrange(phones):08d}" for _ in range(lookups)]
        raw_sql = sa.text(
            "SELECT id, number, state, type, registered_at, lead_unit, handle_due FROM tickets "
            "WHERE citizen_phone = :p AND state IN :states ORDER BY registered_at DESC, id "
            "LIMIT 20"
        ).bindparams(sa.bindparam("states", expanding=True))

        async def raw(phone: str) -> None:
            async with engine.connect() as conn:
                await conn.execute(raw_sql, {"p": phone, "states": list(OPEN_STATES)})

        async def repo(phone: str) -> None:
            async with UnitOfWork(engine) as uow:
                await uow.queries.caller_open_summaries(phone)

        results = {}
        for name, fn in (("raw SQL (baseline)", raw), ("read side", repo)):
            lat = []
            for phone in numbers:
                t0 = time.perf_counter()
                await fn(phone)
                lat.append(time.perf_counter() - t0)
            results[name] = lat
        base = pct(results["raw SQL (baseline)"], 95)
        for name, lat in results.items():
            print(
                f"{name:<22} {pct(lat, 50) * 1000:8.2f} {pct(lat, 95) * 1000:8.2f} "
                f"{pct(lat, 99) * 1000:8.2f} {pct(lat, 95) / base:6.1f}x"
            )
        async with engine.connect() as conn:
            plan = (
                (
                    await conn.execute(
                        sa.text(
                            "EXPLAIN SELECT id FROM tickets WHERE citizen_phone = '13900000001' "
                            "AND state IN ('assigned', 'registered')"
                        )
                    )
                )
                .scalars()
                .all()
            )
        print("plan:", " / ".join(p.strip() for p in plan[:2]))
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    i = sub.add_parser("intake")
    i.add_argument("--rate", type=float, default=200.0)
    i.add_argument("--seconds", type=float, default=10.0)
    lk = sub.add_parser("lookup")
    lk.add_argument("--tickets", type=int, default=1_000_000)
    lk.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args()
    if args.what == "intake":
        asyncio.run(intake(args.rate, args.seconds))
    else:
        asyncio.run(lookup(args.tickets, args.lookups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
