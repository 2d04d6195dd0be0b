"""Satisfaction callbacks benchmark on the real PostgreSQL (rule B-1): claiming and placing due
survey calls with the cap on calls at once held.

One run, fresh databases, the same number of due items in each part:

  baseline — the generic durable job queue (hotline/jobs.py) claiming and completing as many
             jobs, batches the size of the cap: what a claim costs without the cap's count;
  one node — the Dialer (hotline/callbacks/dialer.py) as the backend runs it: reap, expire,
             claim within the cap, and place each call through the ARI port — here an in-process
             fake Asterisk that takes ``POST /channels/create`` and answers "busy" after
             ``--hold`` seconds — then record the outcome and plan the next attempt;
  two nodes — two OS processes (bench/callback_claimer.py: the same Dialer and fake switch)
             claiming from the same table, three attempts per citizen.

Each part prints claims per second, the ratio to the baseline, and the most calls in progress
seen (never above the cap). The citizen's number comes from a stub here (the real one reads the
ticket), so the ticket table is not part of what is measured.

    .venv/bin/python bench/callback_bench.py [--callbacks 10000] [--cap 50] [--hold 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline import db  # noqa: E402
from hotline.callbacks.dialer import Dialer, SurveyCalls  # noqa: E402
from hotline.callbacks.plan import CallWindow, Campaign  # noqa: E402
from hotline.callbacks.store import Campaigns, callbacks  # noqa: E402
from hotline.clock import SystemClock  # noqa: E402
from hotline.jobs import JobQueue, enqueue  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from callback_claimer import BusyLines  # noqa: E402
from jobs_bench import PG, fresh  # noqa: E402  (a fresh database per part, as there)


async def due_callbacks(engine: Any, n: int) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "id": f"t-{i}:1",
            "ticket_id": f"t-{i}",
            "number": f"20261203{i:06d}",
            "cycle": 1,
            "mode": "phone",
            "utility": False,
            "units": "water",
            "state": "calling",
            "deadline": now + dt.timedelta(days=2),
            "due_at": now - dt.timedelta(seconds=1),
            "base": 0,
            "attempts": 0,
            "outcomes": "[]",
            "result": "",
            "method": "",
            "created_at": now,
        }
        for i in range(n)
    ]
    async with engine.begin() as conn:
        for i in range(0, n, 2000):
            await conn.execute(callbacks.insert(), rows[i : i + 2000])


async def baseline(url: str, n: int, batch: int) -> float:
    engine = db.make_engine(url)
    await db.upgrade(engine)
    now = dt.datetime.now(dt.UTC)
    async with engine.begin() as conn:
        for i in range(n):
            await enqueue(conn, "b", f"j{i}", {}, now - dt.timedelta(seconds=1), now=now)
    queue = JobQueue(engine, SystemClock(), "bench")
    started = time.perf_counter()
    done = 0
    while True:
        claimed = await queue.claim(["b"], batch)
        if not claimed:
            break
        done += await queue.complete_all(claimed)
    seconds = time.perf_counter() - started
    await engine.dispose()
    assert done == n, done
    return n / seconds


async def one_node(url: str, n: int, cap: int, hold: float) -> tuple[float, int]:
    engine = db.make_engine(url)
    await db.upgrade(engine)
    await due_callbacks(engine, n)
    # the default policy (busy: again in 10 min) with the window open all day: the run must
    # not depend on the hour it is started at
    policy = Campaign(window=CallWindow(dt.time(0, 0), dt.time.max))
    campaigns = Campaigns(engine, policy, SystemClock(), cap=cap)
    ari = BusyLines(hold)
    calls = SurveyCalls(ari, "hotline-bench", ring_timeout=5, call_seconds=5)
    ari.calls_out = calls

    async def contact(ticket_id: str, cycle: int, why: str) -> tuple[str, str]:
        return "13800000000", "complaint"

    dialer = Dialer(campaigns, calls, contact, SystemClock(), "bench", poll=1.0)
    campaigns.on_change.append(dialer.poke)  # a call's end wakes the loop, as in the backend
    most = 0
    started = time.perf_counter()
    loop = asyncio.create_task(dialer.run())
    while calls.placed < n or dialer.tasks:  # every callback placed and recorded
        await asyncio.sleep(0.05)
        most = max(most, await campaigns.in_progress())
    seconds = time.perf_counter() - started
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    async with engine.connect() as conn:
        placed = await conn.scalar(sa.select(sa.func.count()).where(callbacks.c.attempts == 1))
    await engine.dispose()
    assert placed == n and calls.placed == n, (placed, calls.placed)
    return n / seconds, most


async def two_nodes(url: str, n: int, cap: int, hold: float) -> tuple[float, int]:
    engine = db.make_engine(url)
    await db.upgrade(engine)
    await due_callbacks(engine, n)
    await engine.dispose()
    base = [sys.executable, str(ROOT / "bench" / "callback_claimer.py"), "--url", url]
    args = ["--schema", "public", "--cap", str(cap), "--hold", str(hold), "--idle", "1"]
    started = time.perf_counter()
    procs = [
        subprocess.Popen([*base, *args, "--node", node], stdout=subprocess.PIPE, text=True)
        for node in ("a", "b")
    ]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    seconds = time.perf_counter() - started - 1.0  # less the idle second at the end
    taken = [tuple(t) for o in outs for t in o["taken"]]
    assert len(taken) == len(set(taken)) == 3 * n, len(taken)
    return len(taken) / seconds, max(o["most_in_progress"] for o in outs)


async def main(n: int, cap: int, hold: float) -> None:
    admin = db.make_engine(PG.rsplit("/", 1)[0] + "/postgres")
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    made: list[str] = []
    try:
        made.append(await fresh(admin))
        base = await baseline(made[-1], n, cap)
        made.append(await fresh(admin))
        one, one_most = await one_node(made[-1], n, cap, hold)
        made.append(await fresh(admin))
        two, two_most = await two_nodes(made[-1], n, cap, hold)
    finally:
        async with admin.connect() as conn:
            for url in made:
                name = url.rsplit("/", 1)[1]
                await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    print(f"{n} due callbacks, cap {cap} calls at once, each call held {hold * 1000:.0f} ms")
    print(f"  baseline: job queue claim+complete   {base:8.0f} claims/s   1.00x")
    print(
        f"  one node: claim, place over ARI, record  {one:6.0f} claims/s   {one / base:4.2f}x"
        f"   most in progress {one_most} (cap {cap})"
    )
    print(
        f"  two node processes, 3 attempts each   {two:6.0f} claims/s   {two / base:4.2f}x"
        f"   most in progress {two_most} (cap {cap})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--callbacks", type=int, default=10000)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--hold", type=float, default=0.02)
    a = parser.parse_args()
    asyncio.run(main(a.callbacks, a.cap, a.hold))
