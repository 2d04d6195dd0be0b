"""Queue calls over the fake Asterisk and the memory store: the caller's holding bridge, the
agent leg's fixed channel id, the mixing bridge on answer, hang-ups either side, busy agents,
abandons, overflow, and the queue log the service keeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from hotline.agi.fake_ari import FakeAsterisk, InTurn, Request
from hotline.agi.stasis import Stasis
from hotline.clock import SystemClock
from hotline.config.settings import QueueSettings
from hotline.errors import AriError
from hotline.queue.acd import AcdConfig, OfferDecision, Priority
from hotline.queue.agent import AgentStateError
from hotline.queue.calls import QueueCalls, parse_args, priority_of, skills_of
from hotline.queue.log import QueueLog
from hotline.queue.service import QueueService
from hotline.queue.store import MemoryQueueStore

CALL = "c1"
ARGS = ["queue", "type=help", "priority=0", "utility=", "ticket=", "path=menu:2"]


@dataclass
class World:
    fake: FakeAsterisk
    service: QueueService
    calls: QueueCalls
    stasis: Stasis

    def records(self) -> list[tuple[str, str, str]]:
        return [(r.call_id, r.agent, r.event) for r in self.service.log.recent]

    def sent(self, method: str, prefix: str) -> list[Request]:
        return [r for r in self.fake.requests if r.method == method and r.path.startswith(prefix)]

    def caller_enters(self, call_id: str = CALL, args: list[str] = ARGS) -> None:
        self.fake.channels[call_id] = {"id": call_id, "state": "Up"}
        self.stasis.dispatch(
            {
                "type": "StasisStart",
                "channel": {"id": call_id, "caller": {"number": "13912345678"}},
                "args": args,
            }
        )

    def leg_enters(self, leg: str, call_id: str = CALL) -> None:
        self.fake.channels[leg] = {"id": leg, "state": "Down"}
        self.stasis.dispatch(
            {"type": "StasisStart", "channel": {"id": leg}, "args": ["agent", call_id]}
        )

    def event(self, kind: str, ident: str, **more: Any) -> None:
        self.stasis.dispatch({"type": kind, "channel": {"id": ident, **more}})

    def gone(self, ident: str) -> None:
        self.fake.channels.pop(ident, None)
        self.event("ChannelDestroyed", ident)


async def until(check: Callable[[], Any], rounds: int = 400) -> Any:
    for _ in range(rounds):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with a_world() as made:
        yield made


@contextlib.asynccontextmanager
async def a_world() -> AsyncIterator[World]:
    """Queue calls over the fake Asterisk and the memory store (also for other test modules)."""
    fake = FakeAsterisk()
    clock = SystemClock()
    config = AcdConfig(ring_timeout=15, max_misses=2, wrap_up_seconds=30)
    service = QueueService(MemoryQueueStore(config), QueueLog(None, clock, "n1"), clock)
    settings = QueueSettings(announce_interval=3600, max_wait_seconds=3600)
    calls = QueueCalls(fake, "hotline", service, settings, clock)
    calls.leg_enters = 0.0  # the fake's legs never enter by themselves: dial at once
    stasis = Stasis(fake, "hotline", calls.roles(), clock)
    calls.bind(stasis)
    try:
        yield World(fake, service, calls, stasis)
    finally:
        await stasis.close()
        await service.close()


async def test_a_caller_waits_in_a_holding_bridge_and_the_agent_leg_has_a_fixed_id(
    world: World,
) -> None:
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    create = await until(lambda: world.sent("POST", "/channels/create"))
    assert world.sent("POST", "/bridges")[0].params == {
        "type": "holding",
        "bridgeId": f"hold-{CALL}",
        "name": f"hold-{CALL}",
    }
    assert world.sent("POST", f"/bridges/hold-{CALL}/addChannel")[0].params == {"channel": CALL}
    timeout = world.sent("POST", f"/channels/{CALL}/variable")[0].params
    assert timeout == {"variable": "TIMEOUT(absolute)", "value": "20"}  # the dead-man switch
    (leg,) = create
    assert leg.params == {
        "endpoint": "PJSIP/8001",
        "app": "hotline",
        "appArgs": f"agent,{CALL}",
        "channelId": f"offer-{CALL}-1",
        "originator": CALL,
    }
    assert leg.body == {
        "variables": {
            "HOTLINE_CALL": CALL,
            "HOTLINE_AGENT": "a1",
            "CALLERID(num)": "13912345678",  # the agent sees the number (office staff)
        }
    }
    (dial,) = await until(lambda: world.sent("POST", f"/channels/offer-{CALL}-1/dial"))
    assert dial.params == {"caller": CALL, "timeout": 20}
    assert world.records()[-1] == (CALL, "NONE", "ENTERQUEUE")


async def test_an_answer_bridges_both_and_a_hang_up_ends_the_other_leg_and_wraps_up(
    world: World,
) -> None:
    leg = await talking(world)
    (joined,) = world.sent("POST", f"/bridges/talk-{CALL}/addChannel")
    assert joined.params == {"channel": f"{CALL},{leg}"}
    assert {"type": "mixing", "bridgeId": f"talk-{CALL}", "name": f"talk-{CALL}"} in [
        r.params for r in world.sent("POST", "/bridges")
    ]
    assert [r.params for r in world.sent("POST", f"/channels/{CALL}/variable")][-1] == {
        "variable": "TIMEOUT(absolute)",
        "value": "0",  # a talking call goes on whatever happens to this node
    }
    assert world.sent("DELETE", f"/bridges/hold-{CALL}")
    assert (CALL, "a1", "CONNECT") in world.records()

    world.gone(leg)  # the agent hangs up
    await until(lambda: world.sent("DELETE", f"/channels/{CALL}"))  # so does the caller
    assert world.records()[-1] == (CALL, "a1", "COMPLETEAGENT")
    snapshot = await world.service.snapshot()
    assert snapshot.agents[0].state.value == "wrap_up"
    await until(lambda: world.sent("DELETE", f"/bridges/talk-{CALL}"))


async def test_the_caller_hanging_up_first_is_completecaller_and_the_agent_leg_goes(
    world: World,
) -> None:
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    leg = f"offer-{CALL}-1"
    await until(lambda: world.sent("POST", f"/channels/{leg}/dial"))
    world.leg_enters(leg)
    world.stasis.dispatch({"type": "Dial", "peer": {"id": leg}, "dialstatus": "ANSWER"})
    await until(lambda: world.sent("POST", f"/bridges/talk-{CALL}/addChannel"))
    world.gone(CALL)
    await until(lambda: world.sent("DELETE", f"/channels/{leg}"))
    assert world.records()[-1] == (CALL, "a1", "COMPLETECALLER")


async def test_a_busy_agent_is_a_miss_at_once_and_the_next_agent_rings(world: World) -> None:
    await world.service.login("a1", "8001", {})
    await world.service.login("a2", "8002", {})
    world.caller_enters()
    await until(lambda: world.sent("POST", f"/channels/offer-{CALL}-1/dial"))
    world.stasis.dispatch({"type": "Dial", "peer": {"id": f"offer-{CALL}-1"}, "dialstatus": "BUSY"})
    await until(lambda: world.sent("POST", f"/channels/offer-{CALL}-2/dial"))
    create = world.sent("POST", "/channels/create")[-1]
    assert create.params["endpoint"] == "PJSIP/8002"
    assert (CALL, "a1", "RINGNOANSWER") in world.records()
    assert world.sent("DELETE", f"/channels/offer-{CALL}-1")


async def test_an_agent_leg_that_cannot_be_created_is_declined_and_offered_on(
    world: World,
) -> None:
    world.fake.replies["POST", "/channels/create"] = InTurn([AriError(500, "Allocation failed")])
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    await until(lambda: world.sent("POST", f"/channels/offer-{CALL}-2/dial"))
    assert (CALL, "a1", "RINGNOANSWER") in world.records()  # the failed ring was a miss
    created = [r.params["channelId"] for r in world.sent("POST", "/channels/create")]
    assert created == [f"offer-{CALL}-1", f"offer-{CALL}-2"]  # offered on
    snapshot = await world.service.snapshot()
    assert snapshot.waiting[0].call_id == CALL  # still waiting, not lost


async def test_an_offer_placed_twice_is_refused_by_its_channel_id_and_rings_once(
    world: World,
) -> None:
    world.fake.replies["POST", "/channels/create"] = AriError(409, "Channel with given unique ID")
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    await until(lambda: world.sent("POST", "/channels/create"))
    await asyncio.sleep(0.05)
    assert not world.sent("POST", f"/channels/offer-{CALL}-1/dial")  # no second ringing phone
    assert (CALL, "a1", "RINGNOANSWER") not in world.records()


async def test_a_caller_hanging_up_while_the_agent_rings_is_an_abandon_and_cancels_the_ring(
    world: World,
) -> None:
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    leg = f"offer-{CALL}-1"
    await until(lambda: world.sent("POST", f"/channels/{leg}/dial"))
    world.gone(CALL)
    await until(lambda: world.sent("DELETE", f"/channels/{leg}"))
    assert [r[2] for r in world.records() if r[0] == CALL] == [
        "ENTERQUEUE",
        "RINGCANCELED",
        "ABANDON",
    ]
    snapshot = await world.service.snapshot()
    assert snapshot.agents[0].state.value == "ready"
    assert snapshot.waiting == ()


async def test_with_nobody_staffed_the_caller_leaves_for_a_voice_message(world: World) -> None:
    world.caller_enters()
    await until(lambda: world.sent("POST", f"/channels/{CALL}/continue"))
    variables = [r.params for r in world.sent("POST", f"/channels/{CALL}/variable")]
    assert {"variable": "HOTLINE_QUEUE_EXIT", "value": "voicemail"} in variables
    assert [r[2] for r in world.records()] == ["ENTERQUEUE", "EXITWITHTIMEOUT"]


async def test_after_a_lost_socket_a_caller_who_left_unseen_is_an_abandon(world: World) -> None:
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    await until(lambda: world.sent("POST", f"/channels/offer-{CALL}-1/dial"))
    world.fake.channels.pop(CALL)  # the caller left while the events socket was down
    world.calls.calls[CALL].deliver({"type": "HotlineResync"})
    await until(lambda: (CALL, "NONE", "ABANDON") in world.records())
    assert world.sent("DELETE", f"/channels/offer-{CALL}-1")  # the ringing phone stops


def test_the_dialplan_arguments_give_priority_and_skills() -> None:
    # rules E-1 and H-6: the IVR's priority 9 and 10
    context = parse_args(["type=help", "priority=9", "utility=water", "ticket=", "junk"])
    assert context == {"type": "help", "priority": "9", "utility": "water", "ticket": ""}
    assert priority_of(context).name == "UTILITY"
    assert skills_of(context) == ["utility:water"]
    assert priority_of({"priority": "0", "ticket": "12345-2026-000001"}).name == "REPEAT"
    assert priority_of({"priority": "10"}).name == "EMERGENCY"
    assert priority_of({"priority": "0"}).name == "NORMAL"


async def test_on_reconnect_the_queue_is_brought_back_to_what_asterisk_has(world: World) -> None:
    await world.service.login("a1", "8001", {})
    await world.service.pause("a1", "lunch")
    await world.service.enter("gone-1", priority=Priority.NORMAL)  # its node stopped; gone
    world.fake.replies["GET", "/bridges"] = [
        {"id": "hold-gone-1", "channels": []},  # left behind by the node that stopped
        {"id": "talk-x9", "channels": ["x9", "offer-x9-1"]},  # still in use: kept
        {"id": "other", "channels": []},  # not the queue's
        {"id": "hold-x5", "channels": []},  # a caller that a node runs: its bridge, kept
        {"id": "talk-x6", "channels": ["offer-x6-1"]},  # being filled by its node: kept
    ]
    world.fake.replies["GET", "/applications"] = [
        {"name": "hotline", "channel_ids": ["x5", "x6", "offer-x6-1"]}
    ]
    world.fake.inject({"type": "Nothing"})
    listener = asyncio.create_task(world.stasis.run())  # the socket opens: rebuild
    try:
        await until(lambda: world.sent("DELETE", "/bridges/hold-gone-1"))
        await until(lambda: ("gone-1", "NONE", "ABANDON") in world.records())
        assert not world.sent("DELETE", "/bridges/talk-x9")
        assert not world.sent("DELETE", "/bridges/other")
        assert not world.sent("DELETE", "/bridges/hold-x5")
        assert not world.sent("DELETE", "/bridges/talk-x6")
        assert not world.sent("DELETE", "/channels/offer-x6-1")
    finally:
        listener.cancel()


async def test_offers_decided_on_another_node_are_rung_by_the_node_that_runs_the_caller(
    world: World,
) -> None:
    world.service.node = "n1"
    world.service.control = None  # as if the dispatch had run on another node
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    await until(lambda: world.records()[-1:] == [(CALL, "NONE", "ENTERQUEUE")])
    await asyncio.sleep(0.02)
    assert not world.sent("POST", "/channels/create")
    world.service.control = world.calls
    await world.calls.sync()  # what the sync loop does every 0.2 s
    (create,) = await until(lambda: world.sent("POST", "/channels/create"))
    assert create.params["channelId"] == f"offer-{CALL}-1"
    await world.calls.sync()  # again: placed already, not rung twice
    await asyncio.sleep(0.02)
    assert len(world.sent("POST", "/channels/create")) == 1


async def test_a_node_does_not_ring_for_another_nodes_caller(world: World) -> None:
    world.service.node = "n1"
    await world.calls.ring(OfferDecision("c9", "a1", "8001", "offer-c9-1", "n2"))
    await world.calls.cancel(OfferDecision("c9", "a1", "8001", "offer-c9-1", "n2"))
    assert world.fake.requests == []


async def test_a_caller_moved_here_from_a_stopped_node_keeps_its_place(world: World) -> None:
    world.service.node = "dead"
    await world.service.login("a1", "8001", {})
    await world.service.pause("a1", "lunch")
    await world.service.enter("c0", priority=Priority.NORMAL)  # ahead of it, on this node
    await world.service.enter(CALL, priority=Priority.NORMAL)  # the stopped node's caller
    world.service.node = "n1"
    world.caller_enters(args=["queue", "adopted"])
    await until(lambda: world.sent("POST", f"/bridges/hold-{CALL}/addChannel"))
    snapshot = await world.service.snapshot()
    assert [w.call_id for w in snapshot.waiting] == ["c0", CALL]  # its place, not the back
    offers = await world.service.offers_for([CALL])
    assert offers == {CALL: None}
    stored = await world.service.read(lambda acd, now: acd.waiting_call(CALL))
    assert stored is not None and stored.node == "n1"


async def test_the_agent_leg_is_dialled_once_it_has_entered_the_application(
    world: World,
) -> None:
    world.calls.leg_enters = 5.0  # a dial before would be Asterisk's 409 "not in Stasis"
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    leg = f"offer-{CALL}-1"
    await until(lambda: world.sent("POST", "/channels/create"))
    await asyncio.sleep(0.05)
    assert not world.sent("POST", f"/channels/{leg}/dial")
    world.leg_enters(leg)
    await until(lambda: world.sent("POST", f"/channels/{leg}/dial"))


async def test_the_hand_off_comes_from_the_snapshot_when_ari_conf_shows_the_variables(
    world: World,
) -> None:
    # ari.conf's channelvars: the StasisStart carries the IVR's variables (rule E-1's priority)
    shown = {
        "HOTLINE_TYPE": "help",
        "HOTLINE_PRIORITY": "10",
        "HOTLINE_UTILITY": "",
        "HOTLINE_TICKET": "",
        "HOTLINE_IVR_PATH": "menu:9",
    }
    await world.service.login("a1", "8001", {})
    world.fake.channels[CALL] = {"id": CALL, "state": "Up"}
    world.stasis.dispatch(
        {
            "type": "StasisStart",
            "channel": {"id": CALL, "caller": {"number": "139"}, "channelvars": shown},
            "args": ["queue"],
        }
    )
    await until(lambda: (CALL, "NONE", "ENTERQUEUE") in world.records())

    def priority(acd: Any, now: float) -> Priority:
        return next(c.priority for c in acd.waiting if c.call_id == CALL)

    assert await world.service.read(priority) == Priority.EMERGENCY
    assert world.sent("GET", f"/channels/{CALL}/variable") == []


async def test_without_the_variables_in_the_snapshot_each_is_read_from_the_channel(
    world: World,
) -> None:
    world.fake.channels[CALL] = {"id": CALL, "state": "Up"}
    world.stasis.dispatch(
        {
            "type": "StasisStart",
            "channel": {"id": CALL, "caller": {"number": "139"}, "channelvars": {}},
            "args": ["queue"],
        }
    )
    await until(lambda: (CALL, "NONE", "ENTERQUEUE") in world.records())
    asked = sorted(r.params["variable"] for r in world.sent("GET", f"/channels/{CALL}/variable"))
    assert asked == sorted(
        [
            "HOTLINE_TYPE",
            "HOTLINE_PRIORITY",
            "HOTLINE_UTILITY",
            "HOTLINE_TICKET",
            "HOTLINE_IVR_PATH",
        ]
    )


async def talking(world: World) -> str:
    """a1 at 8001 talking with the caller; the agent leg's id."""
    await world.service.login("a1", "8001", {})
    world.caller_enters()
    leg = f"offer-{CALL}-1"
    await until(lambda: world.sent("POST", f"/channels/{leg}/dial"))
    world.leg_enters(leg)
    world.event("ChannelStateChange", leg, state="Up")
    await until(lambda: (CALL, "a1", "CONNECT") in world.records())
    await until(lambda: world.sent("POST", f"/bridges/talk-{CALL}/addChannel"))
    return leg


async def test_hold_moves_the_caller_to_music_and_unhold_back_to_the_agent(world: World) -> None:
    await talking(world)
    world.fake.requests.clear()
    await world.calls.hold(CALL)
    assert [(r.method, r.path, r.params) for r in world.fake.requests] == [
        ("POST", f"/bridges/talk-{CALL}/removeChannel", {"channel": CALL}),
        (
            "POST",
            "/bridges",
            {"type": "holding", "bridgeId": f"hold-{CALL}", "name": f"hold-{CALL}"},
        ),
        ("POST", f"/bridges/hold-{CALL}/addChannel", {"channel": CALL}),
        ("POST", f"/bridges/hold-{CALL}/moh", {"mohClass": "default"}),
    ]
    world.fake.requests.clear()
    await world.calls.unhold(CALL)
    assert [(r.method, r.path, r.params) for r in world.fake.requests] == [
        ("POST", f"/bridges/hold-{CALL}/removeChannel", {"channel": CALL}),
        ("DELETE", f"/bridges/hold-{CALL}", {}),
        ("POST", f"/bridges/talk-{CALL}/addChannel", {"channel": CALL}),
    ]
    await world.calls.unhold(CALL)  # not on hold: nothing
    assert len(world.fake.requests) == 3


async def test_a_blind_transfer_to_an_agent_rings_that_agent_on_a_new_leg(world: World) -> None:
    leg = await talking(world)
    await world.service.login("a2", "8002", {"utility:water": 1})
    await world.service.login("a3", "8003", {})  # idle longer than a2? not offered: not for it
    with pytest.raises(AgentStateError):
        await world.calls.transfer(CALL, "agent")  # to an agent: which one
    await world.calls.transfer(CALL, "agent", "a2")
    create = await until(
        lambda: [
            r
            for r in world.sent("POST", "/channels/create")
            if r.params["channelId"] == f"offer-{CALL}-2"
        ]
    )
    assert create[0].params["endpoint"] == "PJSIP/8002"  # the agent transferred to, alone
    assert world.sent("DELETE", f"/channels/{leg}")  # the first agent's leg is hung up
    assert (CALL, "a1", "COMPLETEAGENT") in world.records()
    assert world.records().count((CALL, "NONE", "ENTERQUEUE")) == 2
    snapshot = await world.service.snapshot()
    assert {a.agent_id: a.state.value for a in snapshot.agents}["a1"] == "wrap_up"


async def test_a_transfer_to_the_operator_leaves_for_the_dialplans_operator_line(
    world: World,
) -> None:
    await talking(world)
    await world.calls.transfer(CALL, "operator")
    await until(lambda: world.sent("POST", f"/channels/{CALL}/continue"))
    variables = [r.params for r in world.sent("POST", f"/channels/{CALL}/variable")]
    assert {"variable": "HOTLINE_QUEUE_EXIT", "value": "operator"} in variables
    assert (CALL, "a1", "COMPLETEAGENT") in world.records()
