"""AGIChannel turns raw replies into values and errors, whatever the runner."""

from __future__ import annotations

import pytest

from hotline.agi.channel import AGIChannel
from hotline.agi.testing import ScriptedRunner
from hotline.errors import AGICommandError, AGIHangup


async def test_stream_file_returns_the_escape_digit_pressed() -> None:
    ch = AGIChannel(ScriptedRunner([("STREAM FILE", "200 result=49 endpos=8000")]))
    assert await ch.stream_file("hotline/welcome", "12") == "1"


async def test_stream_file_played_through_returns_empty() -> None:
    ch = AGIChannel(ScriptedRunner([("STREAM FILE", "200 result=0 endpos=48000")]))
    assert await ch.stream_file("hotline/welcome") == ""


async def test_missing_prompt_on_a_live_channel_is_a_command_error() -> None:
    ch = AGIChannel(
        ScriptedRunner(
            [("STREAM FILE", "200 result=-1 endpos=0"), ("GET VARIABLE", "200 result=0")]
        )
    )
    with pytest.raises(AGICommandError):
        await ch.stream_file("hotline/nope")


async def test_minus_one_then_hangup_after_it_is_a_hangup() -> None:
    # Asterisk answers the interrupted command first; HANGUP comes after the reply
    runner = ScriptedRunner(
        [("STREAM FILE", "200 result=-1 endpos=12000"), ("GET VARIABLE", "HANGUP\n200 result=0")]
    )
    with pytest.raises(AGIHangup):
        await AGIChannel(runner).stream_file("hotline/welcome", "1")
    assert runner.verbs == ["STREAM FILE", "GET VARIABLE"]


async def test_minus_one_after_a_hangup_is_a_hangup() -> None:
    ch = AGIChannel(ScriptedRunner([("STREAM FILE", "HANGUP\n200 result=-1 endpos=100")]))
    with pytest.raises(AGIHangup):
        await ch.stream_file("hotline/welcome")


async def test_get_data_reports_digits_and_timeout() -> None:
    runner = ScriptedRunner(
        [
            ("GET DATA", "200 result=12 (timeout)"),
            ("GET DATA", "200 result=3"),
            ("GET DATA", "200 result= (timeout)"),
        ]
    )
    ch = AGIChannel(runner)
    first = await ch.get_data("hotline/menu", 5000, 4)
    assert (first.digits, first.timed_out) == ("12", True)
    second = await ch.get_data("hotline/menu", 5000, 1)
    assert (second.digits, second.timed_out) == ("3", False)
    third = await ch.get_data("hotline/menu", 5000, 1)
    assert (third.digits, third.timed_out) == ("", True)
    assert runner.sent[0].args == ("hotline/menu", "5000", "4")


async def test_get_variable_set_and_unset() -> None:
    ch = AGIChannel(
        ScriptedRunner(
            [("GET VARIABLE", "200 result=1 (consultation)"), ("GET VARIABLE", "200 result=0")]
        )
    )
    assert await ch.get_variable("HOTLINE_ROUTE") == "consultation"
    assert await ch.get_variable("NOPE") is None


async def test_dead_channel_reply_is_a_hangup() -> None:
    ch = AGIChannel(ScriptedRunner([("ANSWER", "511 Command Not Permitted on a dead channel")]))
    with pytest.raises(AGIHangup):
        await ch.answer()


async def test_unknown_command_and_usage_are_command_errors() -> None:
    ch = AGIChannel(
        ScriptedRunner(
            [
                ("SET VARIABLE", "510 Invalid or unknown command"),
                (
                    "SET VARIABLE",
                    "520-Invalid command syntax.  Proper usage follows:\n"
                    "Usage\n520 End of proper usage.",
                ),
            ]
        )
    )
    with pytest.raises(AGICommandError, match="510"):
        await ch.set_variable("A", "b")
    with pytest.raises(AGICommandError, match="520"):
        await ch.set_variable("A", "b")


async def test_script_running_out_means_the_caller_hung_up() -> None:
    with pytest.raises(AGIHangup):
        await AGIChannel(ScriptedRunner([])).answer()
