"""The ARI adapter's own logic: events reach the right call; keys, playbacks, hang-ups."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hotline.ivr.ari_channel import AriCallChannel, StasisApp
from hotline.ivr.port import CallerHungUp, Handoff


class RecordingClient:
    """Stands in for AriClient: notes the REST calls (the real one is in the e2e tests)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def request(self, method: str, path: str, **params: Any) -> Any:
        self.calls.append((method, path, params))
        return {"value": "x"} if method == "GET" else None

    async def post(self, path: str, **params: Any) -> Any:
        return await self.request("POST", path, **params)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.request("DELETE", path, **params)


CHANNEL = {"id": "ch-1", "caller": {"number": "13800138000"}}


def dtmf(digit: str) -> dict[str, Any]:
    return {"type": "ChannelDtmfReceived", "digit": digit, "channel": CHANNEL}


async def test_a_key_stops_the_playback_and_is_returned() -> None:
    client = RecordingClient()
    ch = AriCallChannel(client, CHANNEL)  # type: ignore[arg-type]
    ch.events.put_nowait(dtmf("9"))  # not an interrupt key: ignored
    ch.events.put_nowait(dtmf("3"))
    assert await ch.play(["hotline/welcome", "hotline/menu"], "123") == "3"
    method, path, params = client.calls[0]
    assert (method, path) == ("POST", "/channels/ch-1/play")
    assert params["media"] == "sound:hotline/welcome,sound:hotline/menu"
    assert client.calls[1][:2] == ("DELETE", f"/playbacks/{params['playbackId']}")


async def test_collect_gathers_keys_until_the_terminator() -> None:
    ch = AriCallChannel(RecordingClient(), CHANNEL)  # type: ignore[arg-type]
    for d in "2026#":
        ch.events.put_nowait(dtmf(d))
    got = await ch.collect(["hotline/progress_enter"], 20, 5000)
    assert (got.digits, got.timed_out) == ("2026", False)


async def test_a_hang_up_ends_any_step() -> None:
    ch = AriCallChannel(RecordingClient(), CHANNEL)  # type: ignore[arg-type]
    ch.events.put_nowait({"type": "StasisEnd", "channel": CHANNEL})
    with pytest.raises(CallerHungUp):
        await ch.play(["hotline/welcome"], "1")
    with pytest.raises(CallerHungUp):
        await ch.answer()  # no more REST calls for a channel that has left


async def test_the_handoff_sets_variables_and_continues_in_the_dialplan() -> None:
    client = RecordingClient()
    ch = AriCallChannel(client, CHANNEL)  # type: ignore[arg-type]
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

    app = StasisApp(RecordingClient(), "hotline", handler)  # type: ignore[arg-type]
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
