"""The clock is injected everywhere (DESIGN: time is data).

``now()`` is the wall clock (aware), ``monotonic()`` the clock for intervals, TTLs and
deadlines inside the process, ``sleep()`` the one way code waits. :class:`FixedClock` stands
still until moved; its ``sleep`` moves it by the time asked (and yields to the loop once), so a
test runs hours of retries and back-off in milliseconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """An aware datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals, not for dates)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait this long on this clock."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FixedClock:
    """A clock for tests: stands still until moved; sleeping moves it."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.current = start
        self.elapsed = 0.0  # the monotonic reading
        self.slept: list[float] = []  # every sleep asked for, in order

    def now(self) -> dt.datetime:
        return self.current

    def monotonic(self) -> float:
        return self.elapsed

    def advance(self, delta: dt.timedelta) -> None:
        self.current += delta
        self.elapsed += delta.total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(dt.timedelta(seconds=max(0.0, seconds)))
        await asyncio.sleep(0)
