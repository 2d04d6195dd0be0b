"""The Stasis router over the fake Asterisk: roles from appArgs, events by the id they are
about, a failing handler's caller to the safe path, and unowned callers adopted on connect."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from hotline.agi.fake_ari import FakeAsterisk
from hotline.agi.stasis import RESYNC, Stasis, owner_of
from hotline.clock import FixedClock
from hotline.errors import AriError

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def start(ident: str, *args: str) -> dict[str, Any]:
    return {"type": "StasisStart", "channel": {"id": ident}, "args": list(args)}


class Inbox:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def deliver(self, event: dict[str, Any]) -> None:
        self.events.append(event)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_call_starts_the_handler_its_role_names_and_none_is_the_ivr() -> None:
    ran: list[tuple[str, str, list[str]]] = []

    def role(name: str) -> Any:
        async def handler(router: Stasis, channel: dict[str, Any], args: list[str]) -> None:
            ran.append((name, channel["id"], args))

        return handler

    router = Stasis(FakeAsterisk(), "hotline", {"ivr": role("ivr"), "agent": role("agent")})
    router.dispatch(start("in-1"))  # the dialplan's Stasis(hotline): a citizen
    router.dispatch(start("offer-c1-1", "agent", "c1"))  # an originated agent leg
    await router.background.drain()
    assert ran == [("ivr", "in-1", []), ("agent", "offer-c1-1", ["c1"])]


async def test_an_unknown_role_and_a_failing_handler_send_the_caller_to_the_safe_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(router: Stasis, channel: dict[str, Any], args: list[str]) -> None:
        raise RuntimeError("a bug")

    fake = FakeAsterisk()
    router = Stasis(fake, "hotline", {"ivr": broken})
    router.dispatch(start("in-2"))
    router.dispatch(start("in-3", "survey"))  # nobody handles surveys yet
    await router.background.drain()
    continued = sorted(r.path for r in fake.requests if r.path.endswith("/continue"))
    assert continued == ["/channels/in-2/continue", "/channels/in-3/continue"]
    assert (
        "ARI call in-2 failed" in caplog.text and "in-3 entered with role 'survey'" in caplog.text
    )
    assert not router.running and not router.owners


async def test_events_go_to_the_owner_of_their_channel_bridge_playback_or_recording() -> None:
    router = Stasis(FakeAsterisk(), "hotline", {})
    call, bridge, playback = Inbox(), Inbox(), Inbox()
    router.own("ch-1", call)
    router.own("br-1", bridge)
    router.own("pb-9", playback)
    events = [
        {"type": "ChannelDtmfReceived", "digit": "5", "channel": {"id": "ch-1"}},
        {"type": "PlaybackFinished", "playback": {"id": "p", "target_uri": "channel:ch-1"}},
        {"type": "PlaybackFinished", "playback": {"id": "q", "target_uri": "bridge:br-1"}},
        {"type": "ChannelEnteredBridge", "bridge": {"id": "br-1"}, "channel": {"id": "x"}},
        {"type": "BridgeDestroyed", "bridge": {"id": "br-1"}},
        {"type": "PlaybackStarted", "playback": {"id": "pb-9", "target_uri": "announcer:"}},
        {"type": "ChannelDtmfReceived", "digit": "1", "channel": {"id": "nobody"}},
    ]
    for event in events:
        router.dispatch(event)
    assert [e["type"] for e in call.events] == ["ChannelDtmfReceived", "PlaybackFinished"]
    assert [e["type"] for e in bridge.events] == ["PlaybackFinished", "BridgeDestroyed"]
    assert [e["type"] for e in playback.events] == ["PlaybackStarted"]
    assert owner_of(events[3]) == "x"  # a channel event goes to the channel's owner


async def test_on_connect_owners_resync_and_unowned_callers_are_adopted_to_the_safe_path() -> None:
    # a node killed with callers in its IVR: after the restart nobody runs them
    fake = FakeAsterisk(
        channels={
            "left-1": {"id": "left-1", "dialplan": {"context": "citizen-inbound"}},
            "mine": {"id": "mine", "dialplan": {"context": "citizen-inbound"}},
            "other-app": {"id": "other-app", "dialplan": {"context": "citizen-inbound"}},
        }
    )
    fake.replies["GET", "/applications"] = [
        {"name": "hotline-n1", "channel_ids": ["left-1", "mine"]},
        {"name": "someone-else", "channel_ids": ["other-app"]},
    ]
    router = Stasis(fake, "hotline-n1", {}, clock=FixedClock(T0))
    inbox = Inbox()
    router.own("mine", inbox)
    router._opened()
    await router.background.drain()
    assert inbox.events == [{"type": RESYNC}]
    continued = [r.path for r in fake.requests if r.path.endswith("/continue")]
    assert continued == ["/channels/left-1/continue"] and router.adopted == 1


async def test_a_stopped_nodes_waiting_callers_are_moved_here_and_its_agent_legs_hung_up() -> None:
    fake = FakeAsterisk(
        channels={
            "q1": {"id": "q1", "dialplan": {"context": "hotline-queue"}},
            "ivr1": {"id": "ivr1", "dialplan": {"context": "citizen-inbound"}},
            "q2": {"id": "q2", "dialplan": {"context": "hotline-queue"}},
        }
    )
    fake.replies["GET", "/applications"] = [
        {"name": "hotline-dead", "channel_ids": ["q1", "ivr1", "offer-q1-1"]},
        {"name": "hotline-alive", "channel_ids": ["q2"]},  # a live peer's: left alone
        {"name": "hotline-n1", "channel_ids": []},
    ]

    async def peers() -> set[str]:
        return {"hotline-alive", "hotline-n1"}

    router = Stasis(fake, "hotline-n1", {}, clock=FixedClock(T0), family="hotline-", peers=peers)
    assert await router.adopt() == 3
    sent = [(r.method, r.path, r.params) for r in fake.requests if r.method != "GET"]
    assert sent == [
        ("POST", "/channels/q1/move", {"app": "hotline-n1", "appArgs": "queue,adopted"}),
        ("POST", "/channels/ivr1/variable", {"variable": "TIMEOUT(absolute)", "value": "0"}),
        ("POST", "/channels/ivr1/continue", {}),  # the safe path, not cut short by the time-out
        ("DELETE", "/channels/offer-q1-1", {}),
    ]


async def test_a_broadcast_call_is_claimed_and_a_lost_claim_is_quiet() -> None:
    fake = FakeAsterisk()
    router = Stasis(fake, "hotline-n1", {}, clock=FixedClock(T0), family="hotline-")
    router.dispatch({"type": "CallBroadcast", "channel": {"id": "in-9"}})
    await router.background.drain()
    (claim,) = [r for r in fake.requests if r.path == "/events/claim"]
    assert claim.params == {"channelId": "in-9", "application": "hotline-n1"}
    fake.replies["POST", "/events/claim"] = AriError(409, "Channel has already been claimed")
    assert await router.claim("in-10") is False


async def test_the_router_listens_reconnects_and_adopts_after_a_cut() -> None:
    fake = FakeAsterisk()
    started = asyncio.Event()

    async def ivr(router: Stasis, channel: dict[str, Any], args: list[str]) -> None:
        started.set()
        await asyncio.Event().wait()

    router = Stasis(fake, "hotline", {"ivr": ivr}, clock=FixedClock(T0))
    listener = asyncio.create_task(router.run())
    try:
        fake.inject(start("in-7"))
        await asyncio.wait_for(started.wait(), 1)
        fake.cut()
        for _ in range(100):
            if fake.opened == 2:
                break
            await asyncio.sleep(0.01)
        assert fake.opened == 2 and "in-7" in router.running  # the call goes on
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await router.close(grace=0)
    assert fake.requests[-1].path == "/channels/in-7/continue"  # shutdown: the safe path


async def test_a_stopped_nodes_call_in_progress_goes_on() -> None:
    fake = FakeAsterisk(channels={"q1": {"id": "q1", "dialplan": {"context": "hotline-queue"}}})
    fake.replies["GET", "/applications"] = [
        {"name": "hotline-dead", "channel_ids": ["q1", "offer-q1-1"]}
    ]
    fake.replies["GET", "/bridges"] = [
        {"id": "talk-q1", "bridge_type": "mixing", "channels": ["q1", "offer-q1-1"]}
    ]
    router = Stasis(fake, "hotline-n1", {}, clock=FixedClock(T0), family="hotline-")
    assert await router.adopt() == 0
    assert [r for r in fake.requests if r.method != "GET"] == []
