"""One backend node's callback dialer without a switch, as its own process: claims due survey
calls from the shared PostgreSQL schema, "places" each (holds it ``--hold`` seconds, then records
``busy``), and prints what it took as JSON on its last line. Used by the two-process test
(tests/integration/test_callback_nodes.py) and by bench/callback_bench.py.

    python bench/callback_claimer.py --url URL --schema S --node a [--cap 10] [--hold 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotline import db
from hotline.callbacks.plan import OUTCOMES, CallWindow, Campaign
from hotline.callbacks.store import Campaigns, Placement
from hotline.clock import SystemClock

QUICK = Campaign(
    CallWindow(dt.time(0, 0), dt.time.max),  # any hour: the test must not depend on the time
    attempts=3,
    spacing=dict.fromkeys(OUTCOMES, dt.timedelta(milliseconds=10)),
    call_time=dt.timedelta(seconds=1),
)


async def run(
    url: str, schema: str, node: str, cap: int, hold: float, idle: float, lease: float
) -> dict:
    engine = db.make_engine(url, schema=schema)
    campaigns = Campaigns(engine, QUICK, SystemClock(), cap=cap, lease=dt.timedelta(seconds=lease))
    taken: list[tuple[str, int]] = []
    most = 0
    calls: set[asyncio.Task[None]] = set()

    async def place(p: Placement) -> None:
        await asyncio.sleep(hold)
        await campaigns.finish(p, "busy", node=node)

    quiet_since = time.monotonic()
    started = time.monotonic()
    while time.monotonic() - quiet_since < idle:
        if await campaigns.reap():  # calls of a node that died: failed, the next planned
            quiet_since = time.monotonic()
        claimed = await campaigns.claim(node)
        if claimed:
            quiet_since = time.monotonic()
            most = max(most, await campaigns.in_progress())
        for p in claimed:
            taken.append((p.id, p.n))
            task = asyncio.create_task(place(p))
            calls.add(task)
            task.add_done_callback(calls.discard)
        await asyncio.sleep(0.005 if claimed else 0.02)
    await asyncio.gather(*calls)
    await engine.dispose()
    seconds = time.monotonic() - started - idle
    return {"node": node, "taken": taken, "most_in_progress": most, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--cap", type=int, default=10)
    ap.add_argument("--hold", type=float, default=0.05)
    ap.add_argument("--idle", type=float, default=1.5, help="seconds with nothing due: stop")
    ap.add_argument("--lease", type=float, default=600.0, help="seconds a call is held")
    a = ap.parse_args()
    out = asyncio.run(run(a.url, a.schema, a.node, a.cap, a.hold, a.idle, a.lease))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
