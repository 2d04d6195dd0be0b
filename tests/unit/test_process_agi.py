"""pyst2 0.5.1 behind our CommandRunner: its known failure modes never reach a caller."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest

from hotline.agi.channel import AGIChannel
from hotline.agi.process import Pyst2Runner
from hotline.agi.protocol import Command
from hotline.agi.testing import DEFAULT_ENV, env_block
from hotline.errors import AGICommandError, AGIHangup, RemoteProtocolError

ENV = env_block({k: v for k, v in DEFAULT_ENV.items() if k != "agi_network_script"}).decode()


def runner(replies: str, script: str = "ivr") -> tuple[Pyst2Runner, io.StringIO]:
    out = io.StringIO()
    return Pyst2Runner(io.StringIO(ENV + replies), out, script=script), out


def test_fastagi_module_of_pyst2_cannot_even_be_imported_on_python3() -> None:
    with pytest.raises(ModuleNotFoundError, match="SocketServer"):
        import asterisk.fastagi  # noqa: F401


def test_environment_and_script_name_come_through() -> None:
    r, _ = runner("", script="ivr")
    assert r.env.caller_number == "13800138000"
    assert r.env.script == "ivr"


async def test_commands_are_quoted_and_replies_parsed() -> None:
    r, out = runner("200 result=49 endpos=8000\n200 result=1 (consultation)\n")
    ch = AGIChannel(r)
    assert await ch.stream_file("hotline/welcome", "") == "1"
    assert await ch.get_variable("HOTLINE_ROUTE") == "consultation"
    assert out.getvalue() == 'STREAM FILE hotline/welcome ""\nGET VARIABLE HOTLINE_ROUTE\n'


async def test_inline_hangup_is_skipped_and_the_real_reply_read() -> None:
    # pyst2 alone raises ValueError on the HANGUP line and leaves the reply unread.
    r, _ = runner("HANGUP\n200 result=1\n200 result=0 (never read)\n")
    ch = AGIChannel(r)
    await ch.set_variable("HOTLINE_ROUTE", "help")
    assert r.hung_up
    assert r.agi.stdin.readline() == "200 result=0 (never read)\n"  # still in step


async def test_minus_one_after_hangup_is_a_hangup_not_an_app_error() -> None:
    r, _ = runner("HANGUP\n200 result=-1 endpos=0\n")
    with pytest.raises(AGIHangup):
        await AGIChannel(r).stream_file("hotline/welcome")


async def test_minus_one_on_a_live_channel_is_a_command_error() -> None:
    r, _ = runner("200 result=-1 endpos=0\n200 result=0\n")  # the probe: still there
    with pytest.raises(AGICommandError):
        await AGIChannel(r).stream_file("hotline/missing")


async def test_511_is_a_hangup_not_an_unknown_error() -> None:
    r, _ = runner("511 Command Not Permitted on a dead channel or intercept routine\n")
    with pytest.raises(AGIHangup):
        await AGIChannel(r).answer()


@pytest.mark.parametrize(
    "reply",
    [
        "510 Invalid or unknown command\n",
        "520-Invalid command syntax.  Proper usage follows:\nUsage: X\n520 End of proper usage.\n",
    ],
)
async def test_invalid_and_usage_are_command_errors(reply: str) -> None:
    r, _ = runner(reply)
    with pytest.raises(AGICommandError):
        await AGIChannel(r).answer()


async def test_end_of_stream_is_a_hangup() -> None:
    r, _ = runner("")
    with pytest.raises(AGIHangup):
        await AGIChannel(r).answer()


async def test_sighup_from_asterisk_stops_the_next_command() -> None:
    r, out = runner("200 result=0\n")
    r.agi._handle_sighup(1, None)  # what the SIGHUP handler does
    with pytest.raises(AGIHangup):
        await AGIChannel(r).answer()
    assert out.getvalue() == ""  # nothing sent after the hang-up


def test_built_outside_the_main_thread_is_refused_clearly() -> None:
    errors: list[BaseException] = []

    def build() -> None:
        try:
            runner("")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=build)
    t.start()
    t.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])


def test_binary_streams_are_wrapped_for_pyst2() -> None:
    out = io.BytesIO()
    r = Pyst2Runner(io.BytesIO((ENV + "200 result=0\n").encode()), out, script="ivr")
    asyncio.run(AGIChannel(r).answer())
    assert out.getvalue() == b"ANSWER\n"


def test_pyst2_debug_output_with_the_callers_number_is_not_written_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runner("")
    assert "13800138000" not in capsys.readouterr().err  # rule Y-1


async def test_a_timeout_with_no_digits_is_kept_although_pyst2_drops_it() -> None:
    r, _ = runner("200 result= (timeout)\n")
    got = await AGIChannel(r).get_data("hotline/menu", 5000, 1)
    assert (got.digits, got.timed_out) == ("", True)


async def test_trying_then_the_final_reply() -> None:
    r, _ = runner("100 result=0 Trying...\n200 result=0 Gosub complete\n")
    response = await r.execute(Command("GOSUB", ("sub", "s", "1")))
    assert response.data == "Gosub complete"


async def test_garbage_instead_of_a_reply_is_a_protocol_error_not_a_hangup() -> None:
    r, _ = runner("hello there\n")
    with pytest.raises(RemoteProtocolError):
        await AGIChannel(r).answer()
    assert not r.hung_up
