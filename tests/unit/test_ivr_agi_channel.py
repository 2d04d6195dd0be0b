"""The `CallChannel` port over AGI: which AGI commands each step becomes."""

from __future__ import annotations

import pytest

from hotline.agi.channel import AGIChannel
from hotline.agi.testing import ScriptedRunner
from hotline.ivr.agi_channel import AgiCallChannel
from hotline.ivr.port import CallerHungUp, ChannelError, Handoff


def channel(script: list[tuple[str, str]]) -> tuple[AgiCallChannel, ScriptedRunner]:
    runner = ScriptedRunner(script)
    return AgiCallChannel(AGIChannel(runner)), runner


async def test_prompts_play_in_turn_and_stop_at_a_key() -> None:
    ch, runner = channel(
        [("STREAM FILE", "200 result=0 endpos=100"), ("STREAM FILE", "200 result=51 endpos=50")]
    )
    assert await ch.play(["hotline/a", "hotline/b", "hotline/c"], "123") == "3"
    assert [c.args for c in runner.sent] == [("hotline/a", "123"), ("hotline/b", "123")]


async def test_collect_plays_lead_prompts_then_gets_data_on_the_last() -> None:
    ch, runner = channel(
        [("STREAM FILE", "200 result=50 endpos=10"), ("GET DATA", "200 result=0261127 (timeout)")]
    )
    got = await ch.collect(["hotline/a", "hotline/b"], 20, 5000)
    assert (got.digits, got.timed_out) == ("20261127", True)  # the key on the lead counts
    assert runner.sent[1].args == ("hotline/b", "5000", "19")


async def test_a_terminator_on_a_lead_prompt_ends_the_collection() -> None:
    ch, runner = channel([("STREAM FILE", f"200 result={ord('#')} endpos=10")])
    got = await ch.collect(["hotline/a", "hotline/b"], 20, 5000)
    assert (got.digits, got.timed_out, runner.verbs) == ("", False, ["STREAM FILE"])


@pytest.mark.parametrize(
    ("reply", "ended"),
    [
        ("200 result=35 (dtmf) endpos=40000", "dtmf"),
        ("200 result=0 (timeout) endpos=960000", "max"),
        ("200 result=0 endpos=32000", "silence"),
        ("200 result=-1 (hangup) endpos=16000", "hangup"),
    ],
)
async def test_record_writes_where_the_dialplan_says_and_reports_how_it_ended(
    reply: str,
    ended: str,
) -> None:
    ch, runner = channel(
        [("GET VARIABLE", "200 result=1 (/var/lib/lab/spool/recording)"), ("RECORD FILE", reply)]
    )
    got = await ch.record("hotline-vm-1", 120)
    assert got.ended_by == ended and got.name == "hotline-vm-1"
    assert runner.sent[1].args == (
        "/var/lib/lab/spool/recording/hotline-vm-1",
        "wav",
        "#",
        "120000",
        "0",
        "BEEP",
        "s=3",
    )


async def test_a_failed_recording_is_a_channel_error() -> None:
    ch, _ = channel([("GET VARIABLE", "200 result=0"), ("RECORD FILE", "200 result=-1")])
    with pytest.raises(ChannelError):
        await ch.record("x", 10)


async def test_the_handoff_sets_its_variables_with_the_route_last() -> None:
    ch, runner = channel([("SET VARIABLE", "200 result=1")] * 7)
    await ch.transfer(
        Handoff(
            "utility",
            type="help",
            priority=9,
            path="menu:5>utility:gas",
            ticket="20261127-0001",
            utility="gas",
            extra={"ivr_error": "1"},
        )
    )
    sets = [c.args for c in runner.sent]
    assert sets[-1] == ("HOTLINE_ROUTE", "utility")
    assert ("HOTLINE_PRIORITY", "9") in sets and ("HOTLINE_UTILITY", "gas") in sets
    assert ("HOTLINE_IVR_ERROR", "1") in sets


async def test_a_dead_channel_is_a_hang_up_and_an_unknown_command_an_error() -> None:
    ch, _ = channel([("ANSWER", "511 Command Not Permitted on a dead channel")])
    with pytest.raises(CallerHungUp):
        await ch.answer()
    ch, _ = channel([("STREAM FILE", "200 result=-1 endpos=0"), ("GET VARIABLE", "200 result=0")])
    with pytest.raises(ChannelError):
        await ch.play(["hotline/missing"])


async def test_numbers_are_spoken_as_clips() -> None:
    ch, runner = channel([("STREAM FILE", "200 result=0 endpos=1")] * 4)
    await ch.say_digits("1-0#2")
    await ch.say_number(31)
    assert [c.args[0] for c in runner.sent] == [
        "hotline/digit_1",
        "hotline/digit_0",
        "hotline/digit_2",
        "hotline/n_31",
    ]
