"""What the backend depends on, watched: the database, Redis, ARI.

:class:`Dependencies` probes each every ``interval`` seconds, each probe bounded by
``timeout``, and keeps the last answer: ``/readyz`` reports it, and the HTTP edge answers 503
at once while the database is known to be down instead of letting requests wait on it. When a
dependency comes back, the callbacks registered for it run (the journal spool is flushed, the
voice messages on the switch are swept in, shared state is rebuilt): the backend catches up by
itself. A probe may also report a reset (Redis restarted empty), which runs the same callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hotline.background import Background
from hotline.clock import Clock
from hotline.errors import NotMigrated

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[bool | None]]  # raises when down; True: it was reset
Callback = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class Check:
    name: str
    probe: Probe
    on_up: list[Callback] = field(default_factory=list)
    timeout: float | None = None  # None: the watch's
    ok: bool | None = None  # None: not probed yet
    error: str = ""
    since: float = 0.0  # monotonic time of the last change
    went_down: asyncio.Event = field(default_factory=asyncio.Event)  # set while down
    stuck: asyncio.Future[bool | None] | None = None  # a probe let go of at its bound


class Dependencies:
    def __init__(self, clock: Clock, interval: float = 1.0, timeout: float = 1.0) -> None:
        self.clock, self.interval, self.timeout = clock, interval, timeout
        self.checks: dict[str, Check] = {}
        self.background = Background("catch-up")

    def add(self, name: str, probe: Probe, timeout: float | None = None) -> None:
        self.checks[name] = Check(name, probe, timeout=timeout)

    def went_down(self, name: str) -> asyncio.Event:
        """Set from the moment ``name`` is found down until it is back (requests in flight
        wait on it, so they end when the database freezes rather than when they time out)."""
        return self.checks[name].went_down

    def when_up(self, name: str, callback: Callback) -> None:
        """Run ``callback`` each time ``name`` comes back (or is found reset)."""
        self.checks[name].on_up.append(callback)

    def down(self, name: str) -> bool:
        check = self.checks.get(name)
        return check is not None and check.ok is False

    async def probe_all(self) -> None:
        await asyncio.gather(*(self._probe(c) for c in self.checks.values()))

    async def _probe(self, check: Check) -> None:
        # The probe runs as a task of its own and is let go of at its bound: cancelling a
        # query on a frozen server runs cleanup that waits on that server, and the watch must
        # say "down" at the bound, not when the driver has given up.
        if check.stuck is not None and not check.stuck.done():
            self._down(check, "TimeoutError")  # the last probe still hangs: no second one
            return
        task = asyncio.ensure_future(check.probe())
        done, _ = await asyncio.wait({task}, timeout=check.timeout or self.timeout)
        if not done:
            task.cancel()
            check.stuck = task
            task.add_done_callback(_retrieve)
            self._down(check, "TimeoutError")
            return
        exc = task.exception()
        if exc is not None:
            # the class only: /readyz is public, and a driver's text names hosts and ports
            self._down(
                check, "not migrated" if isinstance(exc, NotMigrated) else type(exc).__name__
            )
            return
        reset = task.result()
        came_back = check.ok is False
        if came_back:
            log.warning("%s is back", check.name)
        elif reset:
            log.warning("%s was reset: rebuilding what it held", check.name)
        if check.ok is not True:
            check.since = self.clock.monotonic()
        check.ok, check.error = True, ""
        check.went_down.clear()
        if came_back or reset:
            for callback in check.on_up:
                self.background.submit(_run(callback, check.name), f"{check.name} catch-up")

    def _down(self, check: Check, error: str) -> None:
        if check.ok is not False:
            log.error("%s is down (%s)", check.name, error)
            check.since = self.clock.monotonic()
        check.ok, check.error = False, error
        check.went_down.set()

    async def close(self) -> None:
        """Catch-ups get cancelled, and so do probes still hanging."""
        await self.background.close()
        stuck = [c.stuck for c in self.checks.values() if c.stuck is not None]
        for task in stuck:
            task.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=self.timeout)

    async def run(self) -> None:
        while True:
            await self.probe_all()
            await self.clock.sleep(self.interval)

    def status(self) -> dict[str, dict[str, object]]:
        now = self.clock.monotonic()
        out: dict[str, dict[str, object]] = {}
        for c in self.checks.values():
            entry: dict[str, object] = {"ok": bool(c.ok)}
            if c.ok is None:
                entry["error"] = "not probed yet"
            elif not c.ok:
                entry["error"] = c.error
                entry["down_for"] = round(now - c.since, 1)
            out[c.name] = entry
        return out

    def ready(self) -> bool:
        return all(c.ok for c in self.checks.values())


def _retrieve(task: asyncio.Future[bool | None]) -> None:
    if not task.cancelled():
        task.exception()  # a probe let go of: its late error is not news


async def _run(callback: Callback, name: str) -> None:
    try:
        await callback()
    except Exception as exc:  # the next recovery or the periodic run tries again
        log.warning("%s catch-up: %s", name, type(exc).__name__)
