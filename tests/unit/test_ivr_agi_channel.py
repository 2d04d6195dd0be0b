"""The `CallChannel` port over AGI: which AGI commands each step becomes."""

from __future__ import annotations

import pytest

from hotline.agi.channel import AGIChannel
from hotline.agi.testing import DEFAULT_ENV, ScriptedRunner
from hotline.errors import CallerHungUp, ChannelError
from hotline.ivr.agi_channel import AgiCallChannel
from hotline.ivr.port import Handoff


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
    ("reply", "ended", "seconds"),
    [
        ("200 result=35 (dtmf) endpos=40000", "dtmf", 5.0),
        ("200 result=0 (timeout) endpos=960000", "max", 120.0),
        # silence: Asterisk cut the file back to 1 s after the last sound
        ("200 result=0 (timeout) endpos=32000", "silence", 3.0),
        ("200 result=0 (timeout) endpos=8000", "silence", 0.0),  # the caller said nothing
        ("200 result=-1 (hangup) endpos=16000", "hangup", 2.0),
    ],
)
async def test_record_writes_where_the_dialplan_says_and_reports_how_it_ended(
    reply: str, ended: str, seconds: float
) -> None:
    ch, runner = channel(
        [("GET VARIABLE", "200 result=1 (/var/lib/lab/spool/recording)"), ("RECORD FILE", reply)]
    )
    got = await ch.record("hotline-vm-1", 120)
    assert (got.ended_by, got.seconds, got.name) == (ended, seconds, "hotline-vm-1")
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
    reply = "200 result=-1 (writefile)"  # Asterisk could not open the file
    ch, _ = channel([("GET VARIABLE", "200 result=0"), ("RECORD FILE", reply)])
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


async def test_keys_during_a_played_through_prompt_are_kept_and_it_resumes() -> None:
    # rule I-6: the notice plays to the end; Asterisk would drop keys it is not listening for,
    # so the adapter listens, keeps each key and resumes where the prompt stopped
    ch, runner = channel(
        [
            ("STREAM FILE", "200 result=53 endpos=8000"),  # 5 at 1 s
            ("STREAM FILE", "200 result=50 endpos=12000"),  # 2 half a second later
            ("STREAM FILE", "200 result=0 endpos=62000"),  # played to the end
        ]
    )
    await ch.play_through(["hotline/emergency_notice"])
    assert [c.args for c in runner.sent] == [
        ("hotline/emergency_notice", "0123456789*#", "0"),
        ("hotline/emergency_notice", "0123456789*#", "8000"),
        ("hotline/emergency_notice", "0123456789*#", "12000"),
    ]
    # the next steps get the keys at once, without playing their prompts
    assert await ch.play(["hotline/menu"], "0123456789") == "5"
    got = await ch.collect(["hotline/utility_menu"], 1, 5000)
    assert (got.digits, got.timed_out) == ("2", False)
    assert len(runner.sent) == 3


async def test_typed_ahead_digits_start_a_longer_collection_without_its_prompt() -> None:
    ch, runner = channel(
        [
            ("STREAM FILE", "200 result=50 endpos=100"),
            ("STREAM FILE", "200 result=48 endpos=200"),
            ("STREAM FILE", "200 result=0 endpos=900"),
            ("GET DATA", "200 result=26 (timeout)"),
        ]
    )
    await ch.play_through(["hotline/emergency_notice"])
    got = await ch.collect(["hotline/progress_enter"], 20, 5000)
    assert (got.digits, got.timed_out) == ("2026", True)
    assert runner.sent[-1].args == ("silence/1", "5000", "18")


async def test_a_caller_who_keeps_pressing_cannot_stop_the_notice() -> None:
    script = [("STREAM FILE", "200 result=49 endpos=10")] * 32
    script.append(("STREAM FILE", "200 result=0 endpos=9000"))
    ch, runner = channel(script)
    await ch.play_through(["hotline/emergency_notice"])
    assert runner.sent[-1].args == ("hotline/emergency_notice", "", "10")  # deaf to the end
    assert len(ch.typed) == 32


@pytest.mark.parametrize(
    ("presented", "caller"),
    [
        ("13800138000", "13800138000"),
        ("+8613800138000", "+8613800138000"),
        ("anonymous", ""),
        ("unknown", ""),
        ("Restricted", ""),
        ("", ""),
    ],
)
def test_a_withheld_caller_id_is_no_number(presented: str, caller: str) -> None:
    # rule Y-1: "anonymous" must not join every withheld caller's tickets together
    runner = ScriptedRunner([], {**DEFAULT_ENV, "agi_callerid": presented})
    assert AgiCallChannel(AGIChannel(runner)).caller == caller


async def test_a_prompt_that_listens_for_no_key_leaves_typed_keys_for_the_next_step() -> None:
    ch, runner = channel(
        [
            ("STREAM FILE", "200 result=57 endpos=100"),  # 9 during the notice
            ("STREAM FILE", "200 result=0 endpos=900"),
            ("STREAM FILE", "200 result=0 endpos=500"),  # "invalid", deaf to keys
        ]
    )
    await ch.play_through(["hotline/emergency_notice"])
    assert await ch.play(["hotline/invalid"]) == ""
    assert runner.sent[-1].args == ("hotline/invalid", "")
    assert (await ch.collect(["hotline/menu"], 1, 5000)).digits == "9"
