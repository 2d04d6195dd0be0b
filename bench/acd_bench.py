"""ACD store benchmark: dispatch decisions per second at 2,000 agents and 2,000 waiting calls,
on the Redis store (the state for several nodes) against the in-process store, in one run.

A decision is one agent's call ending and the next waiting call offered to it, as the queue
service runs it (``ended`` + ``dispatch`` in one store step), followed by that offer's answer (a
second step): the two changes every answered call costs. Both stores start from the same state
— ``--agents`` agents talking, ``--waiting`` calls waiting — and make ``--decisions`` decisions.
The Redis store moves the whole state each step (``hotline/queue/store.py``); the memory store
does the same model work without that: the ratio is the price of sharing the queue.

    .venv/bin/python bench/acd_bench.py [--agents 2000] [--waiting 2000] [--decisions 200]

The enter-queue → agent-rung latency against Asterisk's app_queue with 500 SIPp agents (issue
10) is not measured yet: see the README.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline.queue.acd import Acd, AcdConfig, Outcome  # noqa: E402
from hotline.queue.agent import Login  # noqa: E402
from hotline.queue.service import merge  # noqa: E402
from hotline.queue.store import MemoryQueueStore, QueueStore, RedisQueueStore  # noqa: E402

REDIS = os.environ.get("HOTLINE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CONFIG = AcdConfig(wrap_up_seconds=0, ring_timeout=10**6)


def busy_queue(acd: Acd, agents: int, waiting: int) -> Outcome:
    """Every agent talking, ``waiting`` calls in line behind them (and what that touched)."""
    done = [acd.command(f"a{n:05}", Login(f"{10000 + n}"), 0.0) for n in range(agents)]
    done += [acd.enter(f"c{n:06}", 1.0 + n / 1000) for n in range(agents + waiting)]
    offers = acd.dispatch(10.0)
    done += [offers]
    done += [acd.answered(o.call_id, o.agent_id, 11.0) for o in offers.offers]
    return merge(*done)


async def run(store: QueueStore, agents: int, decisions: int) -> tuple[float, list[float]]:
    talking = sorted(
        await store.read(
            lambda acd, now: [(c.call_id, c.agent_id) for c in acd.connected.values()], 0
        )
    )
    steps: list[float] = []
    now = 100.0
    start = time.perf_counter()
    for i in range(decisions):
        call_id, _ = talking[i % len(talking)]
        now += 1
        t = time.perf_counter()

        def end_and_offer(acd: Acd, at: float, call_id: str = call_id) -> Outcome:
            return merge(acd.ended(call_id, at, by="caller"), acd.dispatch(at))

        out = await store.apply(end_and_offer, now)
        steps.append(time.perf_counter() - t)
        (offer,) = out.offers
        await store.apply(
            lambda acd, at, o=offer: acd.answered(o.call_id, o.agent_id, at), now + 0.5
        )
        talking[i % len(talking)] = (offer.call_id, offer.agent_id)
    return decisions / (time.perf_counter() - start), steps


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=2000)
    p.add_argument("--waiting", type=int, default=2000)
    p.add_argument("--decisions", type=int, default=200)
    args = p.parse_args()

    memory = MemoryQueueStore(CONFIG)
    busy_queue(memory.acd, args.agents, args.waiting)
    redis = Redis.from_url(REDIS)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    shared = RedisQueueStore(redis, prefix, CONFIG)
    await shared.apply(lambda acd, now: busy_queue(acd, args.agents, args.waiting), 0)
    size = sum([await redis.memory_usage(k) or 0 for k in shared.keys[1:]])
    try:
        base, base_steps = await run(memory, args.agents, args.decisions)
        rate, steps = await run(shared, args.agents, args.decisions)
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    print(
        f"ACD store: {args.agents} agents talking, {args.waiting} calls waiting, "
        f"{args.decisions} decisions (call ends -> next call offered -> answered)"
    )
    print(f"  state in Redis: {size / 1024:.0f} KiB in {len(shared.keys) - 1} hashes")
    for name, r, s in (("memory (baseline)", base, base_steps), ("Redis", rate, steps)):
        print(
            f"  {name:18} {r:8.1f} decisions/s   end+dispatch step p50 {ms(s, 50):7.2f} ms "
            f"p95 {ms(s, 95):7.2f} ms p99 {ms(s, 99):7.2f} ms"
        )
    print(f"  Redis / memory: {rate / base:.3f}x  (full loads: {shared.reloads})")


if __name__ == "__main__":
    asyncio.run(main())
