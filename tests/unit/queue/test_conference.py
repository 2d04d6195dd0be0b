"""The utility three-way call over the fake Asterisk (rule H-6): the caller on hold while the
duty numbers are rung in the directory's order, a fixed channel id per attempt, busy / no
answer / rejected told apart, the notice and the key, three parties in one bridge, the agent
leaving, the citizen hanging up while the utility rings, every number failing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hotline.queue.agent import AgentStateError
from hotline.queue.conference import Conferences, outcome_of
from hotline.utility.directory import load
from tests.unit.queue.test_queue_calls import CALL, World, a_world, talking, until

UTIL1, UTIL2 = f"utility-{CALL}-1", f"utility-{CALL}-2"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with a_world() as made:
        made.calls.conferences = Conferences(
            made.calls, load(""), ring_timeout=0.5, caller_id="12345", accept_timeout=0.3
        )
        yield made


def utility_enters(world: World, leg: str) -> None:
    world.fake.channels[leg] = {"id": leg, "state": "Down"}
    world.stasis.dispatch(
        {"type": "StasisStart", "channel": {"id": leg}, "args": ["utility", CALL]}
    )


def logged(world: World, event: str) -> list[tuple[str, ...]]:
    return [r.data for r in world.service.log.recent if r.event == event]


@pytest.mark.parametrize(
    ("status", "cause", "outcome"),
    [
        ("BUSY", None, "busy"),
        ("NOANSWER", None, "no_answer"),
        ("", 17, "busy"),
        ("", 19, "no_answer"),
        ("", 21, "rejected"),
        ("", 38, "failed"),
        ("CHANUNAVAIL", None, "failed"),
    ],
)
def test_a_failed_number_is_told_apart_by_dial_status_and_cause(
    status: str, cause: int | None, outcome: str
) -> None:
    assert outcome_of(status, cause) == outcome


async def test_busy_first_then_the_second_number_answers_and_three_share_the_bridge(
    world: World,
) -> None:
    agent = await talking(world)
    world.fake.requests.clear()
    await world.calls.conference(CALL, "water", "20261203-0007")
    # the citizen waits on hold with music while the duty line rings
    await until(lambda: world.sent("POST", f"/bridges/hold-{CALL}/addChannel"))
    (first,) = await until(lambda: world.sent("POST", "/channels/create"))
    assert first.params == {
        "endpoint": "PJSIP/utility-water",
        "app": "hotline",
        "appArgs": f"utility,{CALL}",
        "channelId": UTIL1,
        "originator": CALL,
    }
    assert first.body == {"variables": {"CALLERID(num)": "12345", "HOTLINE_CALL": CALL}}
    utility_enters(world, UTIL1)
    await until(lambda: world.sent("POST", f"/channels/{UTIL1}/dial"))
    world.stasis.dispatch({"type": "Dial", "peer": {"id": UTIL1}, "dialstatus": "BUSY"})

    created = await until(lambda: world.sent("POST", "/channels/create")[1:])
    assert (created[0].params["endpoint"], created[0].params["channelId"]) == (
        "PJSIP/utility-water-2",
        UTIL2,
    )
    utility_enters(world, UTIL2)
    await until(lambda: world.sent("POST", f"/channels/{UTIL2}/dial"))
    world.event("ChannelStateChange", UTIL2, state="Up")
    (notice,) = await until(lambda: world.sent("POST", f"/channels/{UTIL2}/play"))
    media = notice.params["media"]
    assert "digits:202612030007" in media and "utility_notice" in media
    assert "13912345678" not in media  # the duty line never hears who called (Y-1)
    world.stasis.dispatch({"type": "ChannelDtmfReceived", "channel": {"id": UTIL2}, "digit": "1"})
    await until(lambda: world.sent("POST", f"/bridges/talk-{CALL}/addChannel"))
    joined = [r.params["channel"] for r in world.sent("POST", f"/bridges/talk-{CALL}/addChannel")]
    assert joined == [UTIL2, CALL]  # the utility, then the citizen back from hold
    assert [d[2] for d in logged(world, "UTILITYEND")] == ["busy"]
    assert [d[0] for d in logged(world, "UTILITYCONNECT")] == ["PJSIP/utility-water-2"]

    # the agent leaves: citizen and utility talk on, the agent wraps up
    world.gone(agent)
    await until(lambda: (CALL, "a1", "COMPLETEAGENT") in world.records())
    assert not world.sent("DELETE", f"/channels/{CALL}")
    assert not world.sent("DELETE", f"/channels/{UTIL2}")
    # the utility hangs up last but one: the citizen's call ends
    world.gone(UTIL2)
    await until(lambda: world.sent("DELETE", f"/channels/{CALL}"))
    assert logged(world, "UTILITYEND")[-1][2] == "completed"


async def test_the_citizen_hanging_up_while_the_utility_rings_cancels_it(world: World) -> None:
    leg = await talking(world)
    await world.calls.conference(CALL, "gas")
    await until(lambda: world.sent("POST", "/channels/create")[1:])  # the agent's, then gas
    utility = f"utility-{CALL}-1"
    utility_enters(world, utility)
    await until(lambda: world.sent("POST", f"/channels/{utility}/dial"))
    world.gone(CALL)
    await until(lambda: world.sent("DELETE", f"/channels/{utility}"))
    await until(lambda: world.sent("DELETE", f"/channels/{leg}"))
    assert (CALL, "a1", "COMPLETECALLER") in world.records()
    created = [r.params.get("channelId") for r in world.sent("POST", "/channels/create")]
    assert f"utility-{CALL}-2" not in created  # nothing rings on


async def test_every_number_failing_leaves_the_citizen_with_the_agent_and_says_so(
    world: World,
) -> None:
    told: list[tuple[str, object]] = []
    assert world.calls.conferences is not None
    world.calls.conferences.results.append(lambda agent, result: told.append((agent, result)))
    await talking(world)
    await world.calls.conference(CALL, "power")
    utility_enters(world, f"utility-{CALL}-1")
    await until(lambda: world.sent("POST", f"/channels/utility-{CALL}-1/dial"))
    world.fake.channels.pop(f"utility-{CALL}-1")
    world.stasis.dispatch(
        {"type": "ChannelDestroyed", "channel": {"id": f"utility-{CALL}-1"}, "cause": 21}
    )
    utility_enters(world, f"utility-{CALL}-2")  # rings out (no answer within ring_timeout)
    await until(lambda: told)
    agent, result = told[0]
    assert agent == "a1"
    assert result.connected is None  # type: ignore[attr-defined]
    assert [a.outcome for a in result.attempts] == ["rejected", "no_answer"]  # type: ignore[attr-defined]
    # back from hold into the talk bridge with the agent
    await until(lambda: world.sent("POST", f"/bridges/talk-{CALL}/addChannel")[1:])
    assert logged(world, "UTILITYFAIL") == [("power", "2")]
    snapshot = await world.service.snapshot()
    assert snapshot.agents[0].state.value == "talking"


async def test_a_conference_is_asked_only_of_a_talking_call_and_a_known_utility(
    world: World,
) -> None:
    with pytest.raises(AgentStateError):
        await world.calls.conference("nobody", "water")
    await talking(world)
    with pytest.raises(AgentStateError) as info:
        await world.calls.conference(CALL, "sewage")
    assert info.value.code == "unknown_utility"


async def test_a_connected_conference_is_recorded_through_a_snoop_on_the_citizen(
    world: World,
) -> None:
    recorded: list[tuple[str, str]] = []
    assert world.calls.conferences is not None
    world.calls.conferences.recorded.append(lambda call, name: recorded.append((call, name)))
    await talking(world)
    await world.calls.conference(CALL, "water")
    await until(lambda: world.sent("POST", f"/channels/{CALL}/play"))  # the consent notice
    assert "recording_notice" in world.sent("POST", f"/channels/{CALL}/play")[0].params["media"]
    utility_enters(world, UTIL1)
    await until(lambda: world.sent("POST", f"/channels/{UTIL1}/dial"))
    world.event("ChannelStateChange", UTIL1, state="Up")
    world.stasis.dispatch({"type": "ChannelDtmfReceived", "channel": {"id": UTIL1}, "digit": "1"})
    (snoop,) = await until(lambda: world.sent("POST", f"/channels/{CALL}/snoop"))
    assert snoop.params["spy"] == "both" and snoop.params["snoopId"] == f"snoop-{CALL}"
    (record,) = await until(lambda: world.sent("POST", f"/channels/snoop-{CALL}/record"))
    assert record.params["name"] == f"conf-{CALL}"
    world.gone(CALL)  # the call ends: its recording goes to the ticket
    await until(lambda: recorded)
    assert recorded == [(CALL, f"conf-{CALL}")]
    await until(lambda: world.sent("DELETE", f"/channels/snoop-{CALL}"))
