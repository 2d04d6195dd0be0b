"""A shutdown is bounded: past its time, what is stuck is logged with where it waits."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest
from aiohttp import web

from hotline.app import _awaiting, _bounded_cleanup


async def test_a_task_is_shown_with_its_chain_of_awaits() -> None:
    never = asyncio.Event()

    async def inner() -> None:
        await never.wait()

    async def outer() -> None:
        await inner()

    task = asyncio.create_task(outer(), name="stuck one")
    await asyncio.sleep(0)
    chain = _awaiting(task).split("\n  ")[1:]
    assert [line.split()[-1] for line in chain[:3]] == ["outer", "inner", "wait"]
    task.cancel()


class Runner:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def cleanup(self) -> None:
        await asyncio.sleep(self.seconds)


async def test_a_shutdown_past_its_bound_names_what_is_stuck(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def holds_on() -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(holds_on(), name="a call that will not end")
    caplog.set_level(logging.ERROR)
    assert await _bounded_cleanup(cast(web.AppRunner, Runner(0)), 1.0) is True
    assert caplog.records == []
    assert await _bounded_cleanup(cast(web.AppRunner, Runner(3600)), 0.05) is False
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "shutdown stuck on a call that will not end:" in text and "holds_on" in text
    assert "the shutdown took over 0 s" in text
    task.cancel()
