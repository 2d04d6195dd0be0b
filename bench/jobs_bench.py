"""Durable jobs benchmark: jobs/s through hotline's worker on PostgreSQL, against the handler
alone.

The handler is one INSERT in its own transaction (what a small real handler costs). Measured
in one run, on one fresh database each:

  (a) the baseline: the handler alone, N times, ``concurrency`` at a time — no queue at all;
  (b) one worker (claim with FOR UPDATE SKIP LOCKED, run, mark done), in this process;
  (c) two worker processes on the same table (the multi-node case), each job counted once.

    .venv/bin/python bench/jobs_bench.py [--jobs 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline import db  # noqa: E402
from hotline.clock import SystemClock  # noqa: E402
from hotline.jobs import Job, JobQueue, Worker, enqueue  # noqa: E402

PG = os.environ.get("HOTLINE_BENCH_PG", "postgresql+asyncpg://hotline@127.0.0.1:5432/test")
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

CHILD = """
import asyncio, sys
sys.path.insert(0, sys.argv[3])
import sqlalchemy as sa
from hotline import db
from hotline.clock import SystemClock
from hotline.jobs import JobQueue, Worker

async def main(url, node, concurrency):
    engine = db.make_engine(url)
    async def handle(job):
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO runs (key) VALUES (:k)"), {"k": job.key})
    worker = Worker(JobQueue(engine, SystemClock(), node), {"b": handle},
                    concurrency=concurrency)
    while await worker.run_once():
        pass
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[4])))
"""


async def fresh(admin: sa.ext.asyncio.AsyncEngine) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return PG.rsplit("/", 1)[0] + "/" + name


async def prepared(url: str, jobs: int) -> sa.ext.asyncio.AsyncEngine:
    engine = db.make_engine(url)
    await db.upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE runs (key text)"))
        for i in range(jobs):
            await enqueue(conn, "b", f"j{i}", {}, T0)
    return engine


async def runs(engine: sa.ext.asyncio.AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        total = (await conn.execute(sa.text("SELECT count(*) FROM runs"))).scalar_one()
        distinct = (
            await conn.execute(sa.text("SELECT count(DISTINCT key) FROM runs"))
        ).scalar_one()
    return int(total), int(distinct)


async def main(jobs: int, concurrency: int) -> None:
    admin = db.make_engine(PG.rsplit("/", 1)[0] + "/postgres")
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    results: dict[str, float] = {}
    made: list[str] = []
    try:
        # (a) the handler alone
        url = await fresh(admin)
        made.append(url)
        engine = await prepared(url, 0)

        async def handle(key: str) -> None:
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO runs (key) VALUES (:k)"), {"k": key})

        keys = [f"j{i}" for i in range(jobs)]
        started = time.perf_counter()
        for i in range(0, jobs, concurrency):
            await asyncio.gather(*(handle(k) for k in keys[i : i + concurrency]))
        results["handler alone"] = jobs / (time.perf_counter() - started)
        await engine.dispose()

        # (b) one worker in this process
        url = await fresh(admin)
        made.append(url)
        engine = await prepared(url, jobs)

        async def job_handler(job: Job) -> None:
            await handle_on(engine, job.key)

        worker = Worker(
            JobQueue(engine, SystemClock(), "bench"), {"b": job_handler}, concurrency=concurrency
        )
        started = time.perf_counter()
        while await worker.run_once():
            pass
        results["one worker"] = jobs / (time.perf_counter() - started)
        assert await runs(engine) == (jobs, jobs)
        await engine.dispose()

        # (c) two worker processes
        url = await fresh(admin)
        made.append(url)
        engine = await prepared(url, jobs)
        started = time.perf_counter()
        procs = [
            subprocess.Popen([sys.executable, "-c", CHILD, url, node, str(ROOT), str(concurrency)])
            for node in ("a", "b")
        ]
        for p in procs:
            assert p.wait() == 0
        results["two worker processes"] = jobs / (time.perf_counter() - started)
        total, distinct = await runs(engine)
        assert (total, distinct) == (jobs, jobs), (total, distinct)
        await engine.dispose()
    finally:
        async with admin.connect() as conn:
            for url in made:
                name = url.rsplit("/", 1)[1]
                await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    base = results["handler alone"]
    print(f"{jobs} jobs, concurrency {concurrency}, PostgreSQL")
    for name, rate in results.items():
        print(f"  {name:22s} {rate:8.0f} jobs/s   {rate / base:5.2f}x the handler alone")


async def handle_on(engine: sa.ext.asyncio.AsyncEngine, key: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO runs (key) VALUES (:k)"), {"k": key})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.concurrency))
