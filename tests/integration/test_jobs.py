"""Durable jobs on SQLite and on the real PostgreSQL: idempotent enqueue, back-off on a fake
clock, leases that pass a dead node's job on, and two processes sharing 1,000 jobs."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline import db
from hotline.background import backoff
from hotline.clock import FixedClock
from hotline.jobs import (
    DEAD,
    DONE,
    DUE,
    RETRY_FIRST,
    RETRY_TOP,
    Event,
    Job,
    JobQueue,
    Outbox,
    Worker,
    cancel,
    counts,
    enqueue,
    jobs,
    reschedule,
)
from tests.conftest import fresh_database

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parents[2]


async def state_of(engine: AsyncEngine, key: str) -> dict[str, object]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(jobs).where(jobs.c.key == key))).mappings().one()
    return dict(row)


async def test_enqueue_is_idempotent_on_kind_and_key(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await enqueue(conn, "fetch", "k1", {"a": 1}, T0)
        assert not await enqueue(conn, "fetch", "k1", {"a": 2}, T0)  # the same job again
        assert await enqueue(conn, "other", "k1", {}, T0)  # another kind, another job
    assert (await counts(engine)) == {DUE: 2}
    async with engine.connect() as conn:
        payload = await conn.execute(sa.select(jobs.c.payload).where(jobs.c.kind == "fetch"))
    assert payload.scalar_one() == '{"a": 1}'  # the first one stays as it was


async def test_a_rolled_back_change_leaves_no_job(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        tx = await conn.begin()
        await enqueue(conn, "fetch", "gone", {}, T0)
        await tx.rollback()
    assert await counts(engine) == {}


async def test_a_failing_job_is_retried_at_its_back_off_times_and_completes_once(
    engine: AsyncEngine,
) -> None:
    clock = FixedClock(T0)
    async with engine.begin() as conn:
        await enqueue(conn, "flaky", "j1", {"n": 7}, T0, max_attempts=6)
    runs: list[dt.datetime] = []

    async def flaky(job: Job) -> None:
        runs.append(clock.now())
        assert job.payload == {"n": 7}
        if len(runs) < 4:
            raise OSError("the switch is away")

    worker = Worker(JobQueue(engine, clock, "n1"), {"flaky": flaky}, poll=1.0)
    for _ in range(200):  # each round: claim what is due, then a second passes
        await worker.run_once()
        clock.advance(dt.timedelta(seconds=1))
        if len(runs) == 4:
            break
    await worker.run_once()  # nothing left to run
    waits = [(b - a).total_seconds() for a, b in itertools.pairwise(runs)]
    # due again RETRY_FIRST, then twice, four times that after each failure (+ < 1 s polling)
    expected = backoff(RETRY_FIRST, 3, top=RETRY_TOP)
    assert len(runs) == 4 and all(e <= w < e + 1 for w, e in zip(waits, expected, strict=True))
    row = await state_of(engine, "j1")
    assert (row["state"], row["attempts"]) == (DONE, 4)
    assert "OSError" in str(row["last_error"])


async def test_a_job_whose_attempts_are_spent_is_dead_not_retried(engine: AsyncEngine) -> None:
    clock = FixedClock(T0)
    async with engine.begin() as conn:
        await enqueue(conn, "broken", "j2", {}, T0, max_attempts=2)
    calls = 0

    async def broken(job: Job) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("never works")

    worker = Worker(JobQueue(engine, clock, "n1"), {"broken": broken})
    for _ in range(30):
        await worker.run_once()
        clock.advance(dt.timedelta(seconds=10))
    assert calls == 2
    assert (await state_of(engine, "j2"))["state"] == DEAD


async def test_a_timer_fires_at_its_time_moves_and_cancels(engine: AsyncEngine) -> None:
    clock = FixedClock(T0)
    async with engine.begin() as conn:
        await enqueue(conn, "remind", "t1", {}, T0 + dt.timedelta(hours=1), now=T0)
        await enqueue(conn, "remind", "t2", {}, T0 + dt.timedelta(hours=1), now=T0)
        assert await reschedule(conn, "remind", "t1", T0 + dt.timedelta(hours=2))
        assert await cancel(conn, "remind", "t2")
        assert not await cancel(conn, "remind", "nothing")
    fired: list[tuple[str, dt.datetime]] = []

    async def remind(job: Job) -> None:
        fired.append((job.key, clock.now()))

    worker = Worker(JobQueue(engine, clock, "n1"), {"remind": remind})
    clock.advance(dt.timedelta(hours=1, minutes=59))
    assert await worker.run_once() == 0
    clock.advance(dt.timedelta(hours=5))  # nobody ran for hours: it fires late, not never
    assert await worker.run_once() == 1
    assert fired == [("t1", T0 + dt.timedelta(hours=6, minutes=59))]


async def test_a_job_held_by_a_dead_node_passes_on_when_its_lease_ends(
    engine: AsyncEngine,
) -> None:
    clock = FixedClock(T0)
    async with engine.begin() as conn:
        await enqueue(conn, "fetch", "j3", {}, T0)
    dead = JobQueue(engine, clock, "dead-node", lease=60)
    (held,) = await dead.claim(["fetch"], 10)  # and then the node is killed
    ran: list[str] = []

    async def fetch(job: Job) -> None:
        ran.append(job.key)

    alive = Worker(JobQueue(engine, clock, "alive"), {"fetch": fetch})
    clock.advance(dt.timedelta(seconds=59))
    assert await alive.run_once() == 0  # still leased
    clock.advance(dt.timedelta(seconds=2))
    assert await alive.run_once() == 1
    assert ran == ["j3"]
    assert not await dead.complete(held)  # the dead node's late word changes nothing
    row = await state_of(engine, "j3")
    assert (row["state"], row["owner"], row["attempts"]) == (DONE, "alive", 2)


async def test_the_outbox_writes_one_job_per_registered_handler_keyed_by_event(
    engine: AsyncEngine,
) -> None:
    clock = FixedClock(T0)
    outbox = Outbox({"VoiceMessageLeft": ["fetch", "notify"], "Other": ["x"]}, clock)
    event = Event("VoiceMessageLeft", "ev-1", {"stored": "hotline-vm-e1"})
    async with engine.begin() as conn:
        assert await outbox.publish(conn, [event, Event("Unrouted", "ev-2")]) == 2
        assert await outbox.publish(conn, [event]) == 0  # delivered once per handler
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(jobs.c.kind, jobs.c.key).order_by(jobs.c.kind))).all()
    assert [tuple(r) for r in rows] == [("fetch", "ev-1"), ("notify", "ev-1")]


async def test_the_worker_loop_sleeps_on_the_clock_and_wakes_when_poked(
    engine: AsyncEngine,
) -> None:
    clock = FixedClock(T0)
    seen = asyncio.Event()

    async def fetch(job: Job) -> None:
        seen.set()

    worker = Worker(JobQueue(engine, clock, "n1"), {"fetch": fetch}, poll=3600.0)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.05)
        async with engine.begin() as conn:
            await enqueue(conn, "fetch", "j4", {}, clock.now())
        worker.poke()
        await asyncio.wait_for(seen.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


WORKER = """
import asyncio, sys
import sqlalchemy as sa
from hotline import db
from hotline.clock import SystemClock
from hotline.jobs import JobQueue, Worker

async def main(url, node):
    engine = db.make_engine(url)
    async def handle(job):
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO job_runs (key, node) VALUES (:k, :n)"),
                               {"k": job.key, "n": node})
    worker = Worker(JobQueue(engine, SystemClock(), node), {"count": handle}, concurrency=8)
    idle = 0
    while idle < 3:
        idle = 0 if await worker.run_once() else idle + 1
        await asyncio.sleep(0.05 * idle)
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_two_processes_handle_1000_due_jobs_each_exactly_once() -> None:
    async with fresh_database() as url:
        engine = db.make_engine(url)
        try:
            await db.upgrade(engine)
            async with engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE job_runs (key text, node text)"))
                for i in range(1000):
                    await enqueue(conn, "count", f"j{i:04d}", {}, T0)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            procs = [
                subprocess.Popen([sys.executable, "-c", WORKER, url, node], env=env, cwd=ROOT)
                for node in ("node-a", "node-b")
            ]
            for p in procs:
                assert p.wait(timeout=120) == 0
            async with engine.connect() as conn:
                per_key = (
                    await conn.execute(sa.text("SELECT key, count(*) FROM job_runs GROUP BY key"))
                ).all()
                per_node = dict(
                    (
                        await conn.execute(
                            sa.text("SELECT node, count(*) FROM job_runs GROUP BY node")
                        )
                    ).all()
                )
            print(f"1000 jobs over two processes: {per_node}")
            assert len(per_key) == 1000 and {n for _, n in per_key} == {1}
            assert set(per_node) == {"node-a", "node-b"}  # both took a share
            assert await counts(engine) == {DONE: 1000}
        finally:
            await engine.dispose()
