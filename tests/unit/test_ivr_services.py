"""The IVR's services: every answer bounded in time, and a voice message that cannot be
registered now stays on the switch under a name that says whose it is."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from hotline.agi.fake_ari import FakeAsterisk
from hotline.errors import DatabaseUnavailable
from hotline.ivr.fallback import fallback_key, parse
from hotline.ivr.journal import CallRecord
from hotline.ivr.port import Recording
from hotline.ivr.services import BackendIvrServices, Recordings
from hotline.queue.presence import MemoryPresence
from hotline.ticketing.model import TicketType

KEY = fallback_key("the-ari-password")
CALL = CallRecord("1700000000.9", "ivr", "13800138000", "PJSIP/x", dt.datetime.now(dt.UTC))


class Tickets:
    """Stands in for TicketService.register_voice_message: fails, hangs or answers."""

    def __init__(self, fail: Exception | None = None, hang: bool = False) -> None:
        self.fail, self.hang = fail, hang
        self.calls: list[tuple[Any, ...]] = []

    async def register_voice_message(self, *args: Any, **kw: Any) -> Any:
        self.calls.append((*args, kw))
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise self.fail
        return type("T", (), {"number": "20261127-0007"})()


class SlowPresence(MemoryPresence):
    async def available(self) -> int:
        await asyncio.sleep(3600)
        return 3

    async def estimated_wait(self, priority: int) -> float:
        raise ConnectionError("redis away")


def services(tickets: Tickets, presence: MemoryPresence | None = None) -> BackendIvrServices:
    return BackendIvrServices(
        tickets,  # type: ignore[arg-type]
        presence or MemoryPresence(),
        Recordings(Path("unused")),
        key=KEY,
        timeout=0.05,
    )


def test_a_message_is_recorded_under_a_sealed_name_that_says_whose_it_is() -> None:
    svc = services(Tickets())
    name = svc.message_name(CALL, "complaint")
    assert name.startswith("hotline-vm-e") and "13800138000" not in name
    message = parse(name, KEY)
    assert message is not None
    assert (message.call_id, message.caller, message.request_type, message.ivr) == (
        CALL.call_id,
        "13800138000",
        TicketType.COMPLAINT,
        True,
    )
    assert message.name == "hotline-vm-1700000000-9"  # our name: the call, not the number


async def test_a_registration_that_holds_answers_the_number_and_leaves_a_durable_take() -> None:
    tickets = Tickets()
    svc = services(tickets)
    stored = svc.message_name(CALL, "help")
    assert await svc.voice_message(CALL, Recording(stored, 9.0, "silence"), "help") == (
        "20261127-0007"
    )
    ((call_id, phone, ours, seconds, kind, kw),) = tickets.calls
    assert (call_id, phone, ours, seconds, kind) == (
        CALL.call_id,
        "13800138000",
        "hotline-vm-1700000000-9",
        9.0,
        TicketType.HELP,
    )
    assert kw == {"stored": stored}  # the job that takes the recording in commits with it


@pytest.mark.parametrize("tickets", [Tickets(fail=ConnectionError("db down")), Tickets(hang=True)])
async def test_a_registration_that_fails_or_hangs_leaves_the_message_on_the_switch(
    tickets: Tickets, caplog: pytest.LogCaptureFixture
) -> None:
    svc = services(tickets)
    stored = svc.message_name(CALL, "help")
    with caplog.at_level(logging.INFO):
        number = await asyncio.wait_for(
            svc.voice_message(CALL, Recording(stored, 9.0, "silence"), "help"), 1
        )
    assert number == "" and len(tickets.calls) == 1  # no retry in memory: the sweeper's
    assert "stays on the switch" in caplog.text
    assert "13800138000" not in caplog.text and stored not in caplog.text


async def test_lookups_that_hang_are_cut_at_the_bound() -> None:
    svc = services(Tickets())
    with pytest.raises(DatabaseUnavailable, match="no answer within"):
        await asyncio.wait_for(svc._bounded("lookup", asyncio.sleep(3600)), 1)


async def test_agents_unknown_in_time_send_the_caller_on_to_the_queue() -> None:
    svc = services(Tickets(), SlowPresence())
    assert await asyncio.wait_for(svc.agents_available(), 1) == 1
    assert await asyncio.wait_for(svc.estimated_wait(0), 1) == 0.0


async def test_an_empty_message_is_taken_off_the_switch_so_no_sweep_makes_it_a_ticket() -> None:
    svc = services(Tickets())
    stored = svc.message_name(CALL, "help")
    fake = FakeAsterisk(stored={stored: b"RIFF"})
    svc.switch = fake
    svc.discard_message(Recording(stored, 0.2, "silence"))
    await svc.background.drain()
    assert fake.stored == {} and [r.method for r in fake.requests] == ["DELETE"]
    svc.discard_message(Recording(stored, 0.2, "silence"))  # gone already: a 404 is fine
    await svc.background.drain()
    assert svc.background.failures == 0
