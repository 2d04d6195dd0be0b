"""The inbound greeting and main menu (walking skeleton), driven by the scripted fake."""

from __future__ import annotations

import datetime as dt

import pytest

from hotline.agi.channel import AGIChannel, AGIHangup
from hotline.agi.fastagi import AGISession
from hotline.agi.testing import ScriptedRunner
from hotline.clock import FixedClock
from hotline.config.settings import DEFAULT_MENU
from hotline.ivr.inbound import JournalWriter, Menu, inbound_handler, main_menu
from hotline.ivr.journal import CallRecord, MemoryCallJournal

MENU = Menu(DEFAULT_MENU, timeout_ms=5000, attempts=3)
ANSWER = ("ANSWER", "200 result=0")
PLAYED = "200 result=0 endpos=40000"
SET_OK = ("SET VARIABLE", "200 result=1")


def key(digit: str) -> str:
    return f"200 result={ord(digit)} endpos=8000"


def record() -> CallRecord:
    return CallRecord(
        "c1", "ivr", "13800138000", "PJSIP/x", dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    )


async def run(script: list[tuple[str, str]]) -> tuple[str, ScriptedRunner, CallRecord]:
    runner = ScriptedRunner(script)
    call = record()
    route = await main_menu(AGIChannel(runner), MENU, call)
    return route, runner, call


async def test_key_during_the_welcome_routes_at_once() -> None:
    route, runner, call = await run([ANSWER, ("STREAM FILE", key("1")), SET_OK])
    assert route == "consultation"
    assert runner.sent[-1].args == ("HOTLINE_ROUTE", "consultation")
    assert call.digits == "1"
    assert call.steps == ["answer", "welcome", "route:consultation"]


async def test_emergency_notice_plays_before_the_menu() -> None:  # rule I-6
    route, runner, call = await run(
        [
            ANSWER,
            ("STREAM FILE", PLAYED),
            ("STREAM FILE", PLAYED),
            ("GET DATA", "200 result=3"),
            SET_OK,
        ]
    )
    assert route == "complaint"
    assert runner.sent[2].args[0] == "hotline/emergency_notice"
    assert call.steps == ["answer", "welcome", "emergency_notice", "menu", "route:complaint"]


async def test_key_during_the_notice_skips_the_menu() -> None:
    route, runner, _ = await run(
        [ANSWER, ("STREAM FILE", PLAYED), ("STREAM FILE", key("0")), SET_OK]
    )
    assert route == "operator"
    assert "GET DATA" not in runner.verbs


async def test_timeout_repeats_the_menu_then_a_key_counts() -> None:
    route, runner, call = await run(
        [
            ANSWER,
            ("STREAM FILE", PLAYED),
            ("STREAM FILE", PLAYED),
            ("GET DATA", "200 result= (timeout)"),
            ("GET DATA", "200 result=4"),
            SET_OK,
        ]
    )
    assert route == "suggestion"
    assert runner.verbs.count("GET DATA") == 2
    assert "invalid" not in call.steps  # silence is not an invalid key


async def test_invalid_key_is_explained_and_the_menu_repeats() -> None:
    route, runner, call = await run(
        [
            ANSWER,
            ("STREAM FILE", PLAYED),
            ("STREAM FILE", PLAYED),
            ("GET DATA", "200 result=9"),
            ("STREAM FILE", PLAYED),
            ("GET DATA", "200 result=2"),
            SET_OK,
        ]
    )
    assert route == "help"
    assert runner.sent[4].args[0] == "hotline/invalid"
    assert call.digits == "92"


async def test_attempts_exhausted_go_to_the_operator() -> None:
    route, runner, call = await run(
        [
            ANSWER,
            ("STREAM FILE", PLAYED),
            ("STREAM FILE", PLAYED),
            ("GET DATA", "200 result=7"),
            ("STREAM FILE", PLAYED),
            ("GET DATA", "200 result= (timeout)"),
            ("GET DATA", "200 result=8"),
            SET_OK,
        ]
    )
    assert route == "operator"
    assert "attempts_exhausted" in call.steps
    assert runner.verbs.count("GET DATA") == 3


@pytest.mark.parametrize("cut", range(1, 5))
async def test_hangup_at_each_step_ends_cleanly_and_records_how_far(cut: int) -> None:
    full = [ANSWER, ("STREAM FILE", PLAYED), ("STREAM FILE", PLAYED), ("GET DATA", "200 result=1")]
    journal = MemoryCallJournal()
    writer = JournalWriter(journal)
    clock = FixedClock(dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC))
    handler = inbound_handler(MENU, writer, clock.now)
    runner = ScriptedRunner(full[:cut])
    with pytest.raises(AGIHangup):
        await handler(AGISession(env=runner.env, channel=AGIChannel(runner)))
    await writer.drain()
    (row,) = journal.calls
    assert row.outcome == "hangup"
    assert row.route == ""
    expected = ["answer", "welcome", "emergency_notice", "menu"][:cut]
    assert row.steps == expected
    assert row.caller == "13800138000" and row.script == "ivr"


async def test_handler_journals_a_routed_call() -> None:
    journal = MemoryCallJournal()
    writer = JournalWriter(journal)
    clock = FixedClock(dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC))
    runner = ScriptedRunner([ANSWER, ("STREAM FILE", key("1")), SET_OK])
    await inbound_handler(MENU, writer, clock.now)(
        AGISession(env=runner.env, channel=AGIChannel(runner))
    )
    await writer.drain()
    (row,) = journal.calls
    assert (row.outcome, row.route, row.digits) == ("routed", "consultation", "1")
    assert row.ended_at == clock.now()


async def test_a_failing_journal_never_fails_the_call() -> None:
    class Broken(MemoryCallJournal):
        async def record(self, call: CallRecord) -> None:
            raise OSError("database down")

    writer = JournalWriter(Broken())
    runner = ScriptedRunner([ANSWER, ("STREAM FILE", key("1")), SET_OK])
    clock = FixedClock(dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC))
    await inbound_handler(MENU, writer, clock.now)(
        AGISession(env=runner.env, channel=AGIChannel(runner))
    )
    await writer.drain()
    assert writer.failures == 1
    assert runner.sent[-1].args == ("HOTLINE_ROUTE", "consultation")
