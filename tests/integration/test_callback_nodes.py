"""Two backend nodes' dialers, each its own OS process, on one PostgreSQL (rule B-1): no attempt
is taken twice, the cap on calls at once holds across them, and a node killed between and
during calls loses nothing — its calls in progress become failed attempts when their lease runs
out, and the node that is up goes on with the next ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import sys
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.callbacks.store import Campaigns, callbacks
from hotline.clock import SystemClock
from tests.conftest import PG_URL

CLAIMER = Path(__file__).resolve().parents[2] / "bench" / "callback_claimer.py"
sys.path.insert(0, str(CLAIMER.parent))
from callback_claimer import QUICK  # noqa: E402


async def due(engine: AsyncEngine, n: int) -> None:
    campaigns = Campaigns(engine, QUICK, SystemClock())
    now = dt.datetime.now(dt.UTC)
    for i in range(n):
        await campaigns.start(
            {
                "ticket_id": f"t-{i}",
                "number": f"20261203{i:06d}",
                "cycle": 1,
                "channel": "phone",
                "ready": now.isoformat(),
                "deadline": (now + dt.timedelta(days=2)).isoformat(),
            }
        )


async def node(schema: str, name: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLAIMER),
        "--url",
        PG_URL,
        "--schema",
        schema,
        "--node",
        name,
        *extra,
        stdout=asyncio.subprocess.PIPE,
    )


async def report(proc: asyncio.subprocess.Process) -> dict:
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0
    return json.loads(out.decode().strip().splitlines()[-1])


async def attempts(engine: AsyncEngine) -> dict[str, list[int]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(callbacks.c.id, callbacks.c.outcomes))).all()
    return {r.id: [o[0] for o in json.loads(r.outcomes)] for r in rows}


async def test_two_processes_never_take_the_same_attempt_and_hold_the_cap(
    pg_engine: AsyncEngine, pg_schema: str
) -> None:
    await due(pg_engine, 300)
    # both look every 20 ms (no wake-up on a call's end, which would let the node whose call
    # ended take the freed place first every time): they contend for every place
    args = ("--cap", "10", "--poll", "0.02", "--no-poke")
    a, b = await asyncio.gather(*(node(pg_schema, n, *args) for n in ("a", "b")))
    ra, rb = await asyncio.gather(report(a), report(b))
    taken = [tuple(t) for t in ra["taken"] + rb["taken"]]
    assert ra["taken"] and rb["taken"]  # both nodes worked
    assert len(taken) == len(set(taken)) == 900  # 300 citizens x 3 attempts, each once
    assert max(ra["most_in_progress"], rb["most_in_progress"]) <= 10
    assert Counter(n for _, n in taken) == {1: 300, 2: 300, 3: 300}
    assert all(ns == [1, 2, 3] for ns in (await attempts(pg_engine)).values())


async def test_a_node_killed_mid_campaign_loses_nothing(
    pg_engine: AsyncEngine, pg_schema: str
) -> None:
    await due(pg_engine, 100)
    first = await node(pg_schema, "a", "--cap", "10", "--hold", "0.3", "--lease", "1")
    while sum(len(v) for v in (await attempts(pg_engine)).values()) < 30:
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # on calls, between attempts
    await first.wait()
    async with pg_engine.connect() as conn:
        held = await conn.scalar(
            sa.select(sa.func.count()).where(callbacks.c.call_until.is_not(None))
        )
    assert held  # it died holding calls
    restarted = await node(pg_schema, "a2", "--cap", "10", "--lease", "1", "--idle", "3")
    await report(restarted)
    after = await attempts(pg_engine)
    assert all(ns == [1, 2, 3] for ns in after.values()), after  # every attempt once
    async with pg_engine.connect() as conn:
        rows = (await conn.execute(sa.select(callbacks.c.state, callbacks.c.outcomes))).all()
    assert {r.state for r in rows} == {"evaluating"}  # all went on to self-evaluation
    failed = sum(o[1] == "failed" for r in rows for o in json.loads(r.outcomes))
    assert failed == held  # the calls in hand when it died, each one failed attempt
