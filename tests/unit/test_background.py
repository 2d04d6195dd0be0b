"""The one background-task helper and the one retry helper, on a clock that sleeps instantly."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from hotline.background import Background, backoff, retry
from hotline.clock import FixedClock

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


async def test_a_failing_operation_is_retried_at_its_back_off_times_and_completes_once() -> None:
    clock = FixedClock(START)
    calls: list[float] = []

    async def flaky() -> str:
        calls.append(clock.monotonic())
        if len(calls) < 4:
            raise ConnectionError("database restarting")
        return "done"

    result = await retry(flaky, backoff(0.5, 5), what="register", clock=clock)
    assert result == "done" and len(calls) == 4
    assert clock.slept == [0.5, 1.0, 2.0]  # waited only as long as it had to
    assert calls == [0.0, 0.5, 1.5, 3.5]  # each attempt at its back-off time, on the clock
    assert clock.now() == START + dt.timedelta(seconds=3.5)


async def test_the_last_error_is_raised_once_the_delays_are_spent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FixedClock(START)
    attempts = 0

    async def down() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("13800138000 in a driver's message")

    with pytest.raises(ConnectionError):
        await retry(down, [1.0, 2.0], what="fetch", clock=clock)
    assert attempts == 3 and clock.slept == [1.0, 2.0]
    assert "attempt 1/3 failed (ConnectionError)" in caplog.text
    assert "13800138000" not in caplog.text  # the error's text only with detail=True


async def test_an_error_it_should_not_retry_goes_through_at_once() -> None:
    clock = FixedClock(START)

    async def wrong() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        await retry(wrong, [1.0], what="x", clock=clock, retry_on=(ConnectionError,))
    assert clock.slept == []


def test_back_off_grows_and_is_capped() -> None:
    assert backoff(0.5, 4) == [0.5, 1.0, 2.0, 4.0]
    assert backoff(10, 4, top=30) == [10, 20, 30, 30]


async def test_background_keeps_its_tasks_logs_failures_and_drains_late_submissions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    work = Background("journal")
    done: list[str] = []

    async def write(name: str) -> None:
        await asyncio.sleep(0)
        if name == "bad":
            raise RuntimeError("disk full")
        done.append(name)
        if name == "first":  # started while draining: drained too
            work.submit(write("late"), "late row")

    with caplog.at_level(logging.ERROR):
        work.submit(write("first"), "first row")
        work.submit(write("bad"), "bad row")
        assert len(work) == 2
        await asyncio.wait_for(work.drain(), 1)
    assert sorted(done) == ["first", "late"] and len(work) == 0 and work.failures == 1
    assert "journal: bad row failed" in caplog.text


async def test_close_lets_tasks_finish_within_the_grace_then_cancels_and_awaits_the_rest() -> None:
    work = Background("calls")
    quick, slow = asyncio.Event(), asyncio.Event()

    async def call(ends: asyncio.Event, seconds: float) -> None:
        await asyncio.sleep(seconds)
        ends.set()

    a = work.submit(call(quick, 0.01), "quick call")
    b = work.submit(call(slow, 30), "slow call")
    await asyncio.wait_for(work.close(grace=0.2), 2)
    assert quick.is_set() and a.done() and not a.cancelled()
    assert not slow.is_set() and b.cancelled() and len(work) == 0
