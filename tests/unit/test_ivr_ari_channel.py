"""The ARI adapter's own logic over the fake Asterisk: events reach the right call; keys,
playbacks, hang-ups."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hotline.agi.fake_ari import FakeAsterisk
from hotline.errors import CallerHungUp
from hotline.ivr.ari_channel import RESYNC, AriCallChannel, StasisApp, talk_seconds
from hotline.ivr.port import Handoff

CHANNEL = {"id": "ch-1", "caller": {"number": "13800138000"}}


def dtmf(digit: str) -> dict[str, Any]:
    return {"type": "ChannelDtmfReceived", "digit": digit, "channel": CHANNEL}


async def test_a_key_stops_the_playback_and_is_returned() -> None:
    client = FakeAsterisk()
    ch = AriCallChannel(client, CHANNEL)
    ch.events.put_nowait(dtmf("9"))  # not an interrupt key: ignored
    ch.events.put_nowait(dtmf("3"))
    assert await ch.play(["hotline/welcome", "hotline/menu"], "123") == "3"
    method, path, params = client.calls[0]
    assert (method, path) == ("POST", "/channels/ch-1/play")
    assert params["media"] == "sound:hotline/welcome,sound:hotline/menu"
    assert client.calls[1][:2] == ("DELETE", f"/playbacks/{params['playbackId']}")
    assert ch.take_key("0123456789") == ""  # the ignored key is not typed ahead either


async def test_collect_gathers_keys_until_the_terminator() -> None:
    ch = AriCallChannel(FakeAsterisk(), CHANNEL)
    for d in "2026#":
        ch.events.put_nowait(dtmf(d))
    got = await ch.collect(["hotline/progress_enter"], 20, 5000)
    assert (got.digits, got.timed_out) == ("2026", False)


async def test_a_hang_up_ends_any_step() -> None:
    ch = AriCallChannel(FakeAsterisk(), CHANNEL)
    ch.events.put_nowait({"type": "StasisEnd", "channel": CHANNEL})
    with pytest.raises(CallerHungUp):
        await ch.play(["hotline/welcome"], "1")
    with pytest.raises(CallerHungUp):
        await ch.answer()  # no more REST calls for a channel that has left


async def test_the_handoff_sets_variables_and_continues_in_the_dialplan() -> None:
    client = FakeAsterisk()
    ch = AriCallChannel(client, CHANNEL)
    await ch.transfer(Handoff("queue", type="help", path="menu:2"))
    assert (
        "POST",
        "/channels/ch-1/variable",
        {"variable": "HOTLINE_TYPE", "value": "help"},
    ) in client.calls
    assert client.calls[-1][:2] == ("POST", "/channels/ch-1/continue")


async def test_events_go_to_their_call_by_channel_or_playback_target() -> None:
    started: list[AriCallChannel] = []
    gate = asyncio.Event()

    async def handler(call: AriCallChannel) -> None:
        started.append(call)
        await gate.wait()

    app = StasisApp(FakeAsterisk(), "hotline", handler)
    app.dispatch({"type": "StasisStart", "channel": CHANNEL, "args": []})
    await asyncio.sleep(0)
    app.dispatch(dtmf("5"))
    app.dispatch(
        {
            "type": "PlaybackFinished",
            "playback": {"id": "p", "target_uri": "channel:ch-1", "state": "done"},
        }
    )
    app.dispatch(
        {
            "type": "PlaybackFinished",
            "playback": {"id": "q", "target_uri": "channel:other", "state": "done"},
        }
    )
    (call,) = started
    assert call.events.qsize() == 2 and call.caller == "13800138000"
    gate.set()
    await app.close()


async def test_after_a_reconnect_a_playback_that_ended_unseen_ends_the_step() -> None:
    # the PlaybackFinished event was lost with the socket; Asterisk says the playback is gone
    client = FakeAsterisk(channels={"ch-1": CHANNEL})
    ch = AriCallChannel(client, CHANNEL)
    app = StasisApp(client, "hotline", lambda c: asyncio.sleep(0))
    app.own(ch.id, ch)  # as the ivr role does when the call enters
    playing = asyncio.create_task(ch.play(["hotline/welcome"], "1"))
    await asyncio.sleep(0)
    playback = client.calls[0][2]["playbackId"]
    client.missing.add(f"/playbacks/{playback}")
    app._opened()  # the socket is back
    assert await asyncio.wait_for(playing, 1) == ""
    assert ("GET", "/channels/ch-1", {}) in client.calls  # the channel was checked first


async def test_after_a_reconnect_a_caller_who_left_unseen_ends_the_flow() -> None:
    client = FakeAsterisk(missing={"/channels/ch-1"})
    ch = AriCallChannel(client, CHANNEL)
    ch.events.put_nowait({"type": RESYNC})
    with pytest.raises(CallerHungUp):
        await asyncio.wait_for(ch.play(["hotline/welcome"], "1"), 1)
    assert ch.gone


async def test_a_variable_that_is_not_set_is_none_not_a_hang_up() -> None:
    client = FakeAsterisk(missing={"/channels/ch-1/variable"})
    ch = AriCallChannel(client, CHANNEL)
    assert await ch.get_variable("HOTLINE_X") is None
    assert not ch.gone
    await ch.answer()  # the call goes on


async def test_shutdown_sends_running_calls_back_to_the_dialplan() -> None:
    client = FakeAsterisk()

    async def handler(call: AriCallChannel) -> None:
        await asyncio.Event().wait()  # a flow that never ends by itself

    app = StasisApp(client, "hotline", handler)
    app.dispatch({"type": "StasisStart", "channel": CHANNEL, "args": []})
    await asyncio.sleep(0)
    await app.close(grace=0.05)
    assert client.calls[-1][:2] == ("POST", "/channels/ch-1/continue")
    assert not app.calls


def test_a_message_lasts_as_long_as_the_caller_talked() -> None:
    assert talk_seconds({"duration": 9, "talking_duration": 4, "silence_duration": 5}) == 4
    assert talk_seconds({"duration": 9, "talking_duration": 0}) == 0  # silent: no message
    assert talk_seconds({"duration": 7}) == 7


async def test_keys_during_a_played_through_prompt_wait_for_the_next_steps() -> None:
    client = FakeAsterisk()
    ch = AriCallChannel(client, CHANNEL)
    playing = asyncio.create_task(ch.play_through(["hotline/emergency_notice"]))
    await asyncio.sleep(0)
    playback = client.calls[0][2]["playbackId"]
    ch.events.put_nowait(dtmf("5"))
    ch.events.put_nowait(dtmf("2"))
    ch.events.put_nowait(
        {"type": "PlaybackFinished", "playback": {"id": playback, "state": "done"}}
    )
    await asyncio.wait_for(playing, 1)
    assert not any(m == "DELETE" for m, _, _ in client.calls)  # never stopped
    assert await ch.play(["hotline/menu"], "0123456789") == "5"
    got = await ch.collect(["hotline/utility_menu"], 1, 5000)
    assert got.digits == "2" and len(client.calls) == 1  # no prompt played for either


def test_a_withheld_caller_id_is_no_number_over_ari_either() -> None:
    anonymous = {"id": "ch-2", "caller": {"number": "anonymous", "name": ""}}
    assert AriCallChannel(FakeAsterisk(), anonymous).caller == ""


async def test_the_app_reconnects_when_the_socket_drops_and_tells_its_calls_to_resync() -> None:
    fake = FakeAsterisk(channels={"ch-1": CHANNEL})
    started: list[AriCallChannel] = []

    async def handler(call: AriCallChannel) -> None:
        started.append(call)
        await asyncio.Event().wait()

    app = StasisApp(fake, "hotline", handler)
    listener = asyncio.create_task(app.run())
    try:
        fake.inject({"type": "StasisStart", "channel": CHANNEL, "args": []})
        for _ in range(100):
            if started:
                break
            await asyncio.sleep(0.01)
        (call,) = started
        fake.cut()  # the WebSocket drops; events sent meanwhile are lost
        for _ in range(300):
            if fake.opened == 2:
                break
            await asyncio.sleep(0.01)
        assert fake.opened == 2  # back, by itself
        seen = [call.events.get_nowait()["type"] for _ in range(call.events.qsize())]
        assert RESYNC in seen  # the call re-checks what it was waiting for
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await app.close(grace=0)


async def test_the_ivr_keeps_a_dead_man_time_out_ahead_and_clears_it_when_it_hands_on() -> None:
    client = FakeAsterisk()

    async def handler(call: AriCallChannel) -> None:
        await asyncio.sleep(0.05)
        await call.transfer(Handoff("queue", type="help", path="menu:2"))

    app = StasisApp(client, "hotline-n1", handler, dead_man=20)
    app.dispatch({"type": "StasisStart", "channel": CHANNEL, "args": []})
    await app.background.drain()
    timeouts = [
        (i, r.params["value"])
        for i, r in enumerate(client.requests)
        if r.params.get("variable") == "TIMEOUT(absolute)"
    ]
    assert timeouts[0][1] == "20"  # pushed while the node runs the call
    cleared, continued = timeouts[-1][0], len(client.requests) - 1
    assert timeouts[-1][1] == "0" and cleared < continued  # cleared before it leaves
    assert client.requests[-1].path == "/channels/ch-1/continue"
    assert [v for _, v in timeouts].count("0") == 1


async def test_a_failing_ivr_call_clears_the_time_out_before_its_safe_path() -> None:
    client = FakeAsterisk()

    async def handler(call: AriCallChannel) -> None:
        raise RuntimeError("a bug")

    app = StasisApp(client, "hotline-n1", handler, dead_man=20)
    app.dispatch({"type": "StasisStart", "channel": CHANNEL, "args": []})
    await app.background.drain()
    tail = [(r.path, r.params.get("value")) for r in client.requests[-2:]]
    assert tail == [("/channels/ch-1/variable", "0"), ("/channels/ch-1/continue", None)]
