"""The one background-task helper, and the back-off the durable jobs retry at (their retries on
a fake clock: tests/integration/test_jobs.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from hotline.background import Background, backoff

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


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
