"""The IVR's services: a voice message is never lost to a database hiccup."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from hotline.ivr.journal import CallRecord
from hotline.ivr.port import Recording
from hotline.ivr.services import BackendIvrServices, RecordingFetcher
from hotline.queue.presence import MemoryPresence


class FlakyTickets:
    """Stands in for TicketService.register_voice_message: fails ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[Any, ...]] = []

    async def register_voice_message(self, *args: Any) -> Any:
        self.calls.append(args)
        if len(self.calls) <= self.failures:
            raise ConnectionError("database restarting")
        return type("T", (), {"number": "20261127-0007"})()


class Fetcher(RecordingFetcher):
    def __init__(self) -> None:
        super().__init__(None, Path("unused"))
        self.asked: list[str] = []

    def fetch_later(self, name: str) -> None:
        self.asked.append(name)


CALL = CallRecord("1700000000.9", "ivr", "13800138000", "PJSIP/x", dt.datetime.now(dt.UTC))
MESSAGE = Recording("hotline-vm-1700000000-9", 9.0, "silence")


async def test_a_registration_that_fails_is_retried_until_it_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tickets, fetcher = FlakyTickets(failures=2), Fetcher()
    svc = BackendIvrServices(tickets, MemoryPresence(), fetcher, retry_delays=(0, 0, 0))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        assert await svc.voice_message(CALL, MESSAGE, "help") == ""  # not yet
        await asyncio.wait_for(svc.drain(), 1)
    assert len(tickets.calls) == 3 and tickets.calls[0] == tickets.calls[2]  # same call id
    assert fetcher.asked == [MESSAGE.name]  # fetched once registered
    assert "registered as 20261127-0007" in caplog.text and "13800138000" not in caplog.text


async def test_a_registration_that_never_holds_says_where_the_message_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tickets, fetcher = FlakyTickets(failures=99), Fetcher()
    svc = BackendIvrServices(tickets, MemoryPresence(), fetcher, retry_delays=(0, 0))  # type: ignore[arg-type]
    assert await svc.voice_message(CALL, MESSAGE, "help") == ""
    await asyncio.wait_for(svc.drain(), 1)
    assert len(tickets.calls) == 3 and fetcher.asked == []
    assert f"{MESSAGE.name} was NOT registered" in caplog.text


async def test_a_registration_that_holds_at_once_answers_the_number() -> None:
    tickets, fetcher = FlakyTickets(failures=0), Fetcher()
    svc = BackendIvrServices(tickets, MemoryPresence(), fetcher)  # type: ignore[arg-type]
    assert await svc.voice_message(CALL, MESSAGE, "complaint") == "20261127-0007"
    assert fetcher.asked == [MESSAGE.name] and len(svc.background) == 0
