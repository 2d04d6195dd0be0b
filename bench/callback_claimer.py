"""One backend node's callback dialer as its own process — the backend's Dialer and SurveyCalls
over an in-process fake switch: claims due survey calls from the shared PostgreSQL schema,
places each through the ARI port (the fake takes the channel and, ``--hold`` seconds later, the
citizen is busy), records the outcomes, and prints what it took as JSON on its last line. Used
by the two-process test (tests/integration/test_callback_nodes.py) and bench/callback_bench.py.

    python bench/callback_claimer.py --url URL --schema S --node a [--cap 10] [--hold 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotline import db
from hotline.agi.fake_ari import FakeAsterisk
from hotline.callbacks.dialer import Dialer, SurveyCalls
from hotline.callbacks.plan import OUTCOMES, CallWindow, Campaign
from hotline.callbacks.store import Campaigns, Placement
from hotline.clock import SystemClock

QUICK = Campaign(
    CallWindow(dt.time(0, 0), dt.time.max),  # any hour: the test must not depend on the time
    attempts=3,
    spacing=dict.fromkeys(OUTCOMES, dt.timedelta(milliseconds=10)),
    call_time=dt.timedelta(seconds=1),
)


class BusyLines(FakeAsterisk):
    """A switch where each survey channel is taken and, ``hold`` seconds later, the citizen
    is busy (the outcome the survey role would report)."""

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold
        self.calls_out: SurveyCalls | None = None

    async def request(self, method: str, path: str, **params: Any) -> Any:
        if method == "POST" and path == "/channels/create":
            leg = str(params["channelId"])
            asyncio.get_running_loop().call_later(self.hold, self._busy, leg)
            return {"id": leg}
        return await super().request(method, path, **params)

    def _busy(self, leg: str) -> None:
        assert self.calls_out is not None
        entry = self.calls_out.dialling.get(leg)
        if entry is not None and not entry.done.done():
            entry.done.set_result("busy")


class Taking(Dialer):
    """The backend's dialer, noting each attempt it takes."""

    taken: list[tuple[str, int]]

    async def place(self, p: Placement) -> None:
        self.taken.append((p.id, p.n))
        await super().place(p)


async def stub_contact(ticket_id: str, cycle: int, why: str) -> tuple[str, str]:
    return "13800000000", "complaint"  # the real one reads the ticket


async def run(
    url: str,
    schema: str,
    node: str,
    cap: int,
    hold: float,
    idle: float,
    lease: float,
    poll: float = 0.2,
    poke: bool = True,
) -> dict[str, Any]:
    engine = db.make_engine(url, schema=schema)
    lease_for = dt.timedelta(seconds=lease)
    campaigns = Campaigns(engine, QUICK, SystemClock(), cap=cap, lease=lease_for)
    ari = BusyLines(hold)
    calls = SurveyCalls(ari, f"hotline-{node}", ring_timeout=2, call_seconds=2)
    ari.calls_out = calls
    dialer = Taking(campaigns, calls, stub_contact, SystemClock(), node, poll=poll)
    dialer.taken = []
    if poke:  # as in the backend: a call's end wakes the loop (the node that ended one claims)
        campaigns.on_change.append(dialer.poke)
    started = time.monotonic()
    loop = asyncio.create_task(dialer.run())
    most, seen, quiet_since = 0, 0, time.monotonic()
    while time.monotonic() - quiet_since < idle:
        await asyncio.sleep(0.02)
        most = max(most, await campaigns.in_progress())
        if len(dialer.taken) != seen or dialer.tasks:
            seen, quiet_since = len(dialer.taken), time.monotonic()
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    await engine.dispose()
    seconds = time.monotonic() - started - idle
    return {"node": node, "taken": dialer.taken, "most_in_progress": most, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--cap", type=int, default=10)
    ap.add_argument("--hold", type=float, default=0.05)
    ap.add_argument("--idle", type=float, default=1.5, help="seconds with nothing due: stop")
    ap.add_argument("--lease", type=float, default=600.0, help="seconds a call is held")
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between looks")
    ap.add_argument("--no-poke", action="store_true", help="look on the poll only")
    a = ap.parse_args()
    out = asyncio.run(
        run(a.url, a.schema, a.node, a.cap, a.hold, a.idle, a.lease, a.poll, not a.no_poke)
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
