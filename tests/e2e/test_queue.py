"""The ACD over ARI in the lab: SIPp citizens wait in the queue, SIPp agent phones on PJSIP/80xx
ring and answer, the backend bridges them (issue 10's "what it must show")."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hotline.agi.ari import AriClient
from hotline.lab.calls import observe_call
from hotline.lab.instance import Lab
from hotline.lab.phone import AgentPhone
from hotline.lab.sipp import CallPlan, place_call
from tests.e2e.conftest import LabBackend

pytestmark = pytest.mark.e2e

QUICK = {  # short rings and wrap-ups: the test is what happens, not how long it takes
    "HOTLINE_QUEUE_RING_TIMEOUT": "4",
    "HOTLINE_QUEUE_WRAP_UP_SECONDS": "2",
    "HOTLINE_QUEUE_ANNOUNCE_INTERVAL": "60",
}


def caller(last4: str) -> str:
    return "139" + "".join(random.choice("0123456789") for _ in range(4)) + last4


def phone(lab: Lab, extension: str, **kw: Any) -> AgentPhone:
    creds = lab.credentials()
    return AgentPhone(
        lab.root,
        f"{lab.home_in_root}/sipp",
        lab.lab.sip_port,
        extension,
        creds.agent_passwords[extension],
        **kw,
    )


async def direct(lab: Lab, number: str, who: str, hold_ms: int) -> bool:
    """A caller straight into the queue's hand-off (the lab's 12371 / 12375), on the line for
    ``hold_ms`` after the answer unless hung up first."""
    plan = CallPlan(number=number, caller=who, answer_wait_ms=100, hold_ms=hold_ms)
    result = await place_call(
        lab.root, f"{lab.home_in_root}/sipp", lab.lab.sip_port, plan, hold_ms / 1000 + 60
    )
    return result.ok


async def queue_log(url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT call_id, agent, event, data FROM queue_log ORDER BY id")
            )
            return [dict(r) for r in rows.mappings()]
    finally:
        await engine.dispose()


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every)


def agent(b: LabBackend, extension: str, skills: dict[str, int] | None = None) -> tuple[str, str]:
    token = b.user(f"坐席{extension}", "agent")
    body: dict[str, Any] = {"extension": extension}
    if skills:
        body["skills"] = skills
    me = b.api(token, "POST", "/api/v1/agents/me/login", body)
    assert me["state"] == "ready"
    return token, me["agent"]


def state_of(b: LabBackend, token: str, agent_id: str) -> str:
    agents = b.api(token, "GET", "/api/v1/queue")["agents"]
    return next(a["state"] for a in agents if a["agent"] == agent_id)


def told(b: LabBackend) -> str:
    """What the backend logged about the queue (for a failing assertion's message)."""
    lines = b.output().splitlines()
    shown = ("queue", "ERROR", "Error:")  # an exception's last line too
    return "\n".join(line for line in lines if any(s in line for s in shown))[-4000:]


def entered_by_caller(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The last four digits of each caller (ENTERQUEUE's masked caller id) -> the call id."""
    return {r["data"].split("|")[1][-4:]: r["call_id"] for r in rows if r["event"] == "ENTERQUEUE"}


def events_of(rows: list[dict[str, Any]], call_id: str) -> list[str]:
    return [r["event"] for r in rows if r["call_id"] == call_id]


async def test_a_citizen_keys_1_and_talks_to_the_agent_in_one_mixing_bridge(
    lab: Lab, backend: Callable[..., LabBackend], database: str, ari: AriClient
) -> None:
    b = backend(**QUICK)
    token, agent_id = agent(b, "8001")
    async with phone(lab, "8001", answer_after_ms=1000, hold_ms=6000) as desk:
        who = caller("1001")
        call = asyncio.create_task(observe_call(lab, CallPlan(caller=who, dtmf="1", hold_ms=30000)))

        async def talking() -> list[dict[str, Any]]:
            bridges = await ari.get("/bridges")
            return [x for x in bridges if x["id"].startswith("talk-")]

        (bridge,) = await wait_for(talking, timeout=40)
        assert bridge["bridge_type"] == "mixing"
        call_id = bridge["id"].removeprefix("talk-")
        assert sorted(bridge["channels"]) == sorted([call_id, f"offer-{call_id}-1"]), told(b)
        agent_leg = await ari.get(f"/channels/offer-{call_id}-1")
        assert agent_leg["name"].startswith("PJSIP/8001-")
        assert state_of(b, token, agent_id) == "talking"

        seen = await call  # the agent hangs up after 6 s; the backend hangs the caller up
        assert seen.call.ok, seen.summary()
        assert await desk.wait(10)
        assert not seen.user_events("HotlineFallback"), seen.summary()

    async def wrapped_up() -> list[str]:
        rows = await queue_log(database)
        done = events_of(rows, call_id)
        return done if "COMPLETEAGENT" in done else []

    assert await wait_for(wrapped_up) == ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT"]
    rows = await queue_log(database)
    (connect,) = [r for r in rows if r["call_id"] == call_id and r["event"] == "CONNECT"]
    assert connect["agent"] == agent_id
    assert connect["data"].split("|")[1] == f"offer-{call_id}-1"  # app_queue's data2: the leg
    states = [r["event"] for r in rows if r["agent"] == agent_id]
    assert states[0] == "AGENTLOGIN"
    exported = b.cli("queue-log", "--call", call_id).splitlines()  # app_queue's queue_log
    assert [line.split("|")[1:5] for line in exported] == [
        [call_id, "hotline", "NONE", "ENTERQUEUE"],
        [call_id, "hotline", agent_id, "CONNECT"],
        [call_id, "hotline", agent_id, "COMPLETEAGENT"],
    ]
    assert all(line.split("|")[0].isdigit() for line in exported)  # epoch seconds

    async def ready_again() -> bool:
        return state_of(b, token, agent_id) == "ready"

    assert state_of(b, token, agent_id) in ("wrap_up", "ready")
    assert await wait_for(ready_again, timeout=10)
    assert not [x for x in await ari.get("/bridges") if call_id in x["id"]]  # nothing left


async def test_a_utility_caller_after_two_ordinary_callers_is_answered_first(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    # rule H-6: a utility emergency jumps the line
    b = backend(**QUICK)
    token, agent_id = agent(b, "8001", {"utility:water": 5})
    async with phone(lab, "8001", answer_after_ms=500, hold_ms=9000, calls=2) as desk:
        first = asyncio.create_task(direct(lab, "12371", caller("2001"), 14000))

        async def busy() -> bool:
            return state_of(b, token, agent_id) == "talking"

        assert await wait_for(busy)
        waiting = [
            asyncio.create_task(direct(lab, "12371", caller("2002"), 16000)),
            asyncio.create_task(direct(lab, "12371", caller("2003"), 16000)),
        ]
        await asyncio.sleep(1.0)
        utility = asyncio.create_task(direct(lab, "12375", caller("2009"), 16000))
        results = await asyncio.gather(first, *waiting, utility)
        assert all(results)
        assert await desk.wait(10)

    rows = await queue_log(database)
    entered = {
        r["data"].split("|")[1][-4:]: r["call_id"] for r in rows if r["event"] == "ENTERQUEUE"
    }
    connects = [r["call_id"] for r in rows if r["event"] == "CONNECT"]
    assert connects[:2] == [entered["2001"], entered["2009"]]  # the emergency jumped the line
    for ordinary in ("2002", "2003"):
        assert events_of(rows, entered[ordinary])[-1] == "ABANDON"


async def test_ring_no_answer_goes_to_the_next_agent_and_pauses_the_one_who_missed(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    b = backend(**QUICK, HOTLINE_QUEUE_MAX_MISSES="1")
    token1, first = agent(b, "8001")  # logged in first: idle longest, offered first
    await asyncio.sleep(0.1)
    _, second = agent(b, "8002")
    async with (
        phone(lab, "8001", answer=False) as deaf,
        phone(lab, "8002", answer_after_ms=500, hold_ms=2000) as desk,
    ):
        assert await direct(lab, "12371", caller("3001"), 20000)
        assert await desk.wait(10)
        await deaf.stop()

    rows = await queue_log(database)
    (call_id,) = {r["call_id"] for r in rows if r["event"] == "ENTERQUEUE"}
    mine = [(r["event"], r["agent"]) for r in rows if r["call_id"] == call_id]
    assert mine[:3] == [("ENTERQUEUE", "NONE"), ("RINGNOANSWER", first), ("CONNECT", second)]
    assert float(next(r for r in rows if r["event"] == "RINGNOANSWER")["data"]) >= 4000
    pauses = [r["data"] for r in rows if r["event"] == "PAUSE" and r["agent"] == first]
    assert pauses == ["missed_calls"]
    assert state_of(b, token1, first) == "paused"


async def test_a_caller_who_hangs_up_while_waiting_is_an_abandon_and_no_phone_rings(
    lab: Lab, backend: Callable[..., LabBackend], database: str, ari: AriClient
) -> None:
    b = backend(**QUICK)
    token, _ = agent(b, "8001")
    b.api(token, "POST", "/api/v1/agents/me/pause", {"reason": "lunch"})
    helper = b.user("另一坐席", "agent")  # staffed, so the queue takes the call, but on a call
    b.api(helper, "POST", "/api/v1/agents/me/login", {"extension": "8002"})
    async with phone(lab, "8002", answer_after_ms=300, hold_ms=12000) as busy_desk:
        talking = asyncio.create_task(direct(lab, "12371", caller("4001"), 15000))

        async def on_a_call() -> bool:
            agents = b.api(token, "GET", "/api/v1/queue")["agents"]
            return any(a["state"] == "talking" for a in agents)

        assert await wait_for(on_a_call)
        assert await direct(lab, "12371", caller("4002"), 3000)  # waits 3 s, hangs up
        assert await talking
        assert await busy_desk.wait(10)

    rows = await queue_log(database)
    entered = {
        r["data"].split("|")[1][-4:]: r["call_id"] for r in rows if r["event"] == "ENTERQUEUE"
    }
    left = entered["4002"]
    assert events_of(rows, left) == ["ENTERQUEUE", "ABANDON"]
    (abandon,) = [r for r in rows if r["call_id"] == left and r["event"] == "ABANDON"]
    position, origposition, waited = abandon["data"].split("|")
    assert (position, origposition) == ("1", "1") and 2 <= int(waited) <= 5
    assert not [r for r in rows if r["call_id"] == left and r["event"] == "RINGNOANSWER"]
    channels = await ari.get("/channels")
    assert not [c for c in channels if c["id"].startswith(f"offer-{left}")]


async def test_with_nobody_ready_the_caller_is_offered_a_voice_message(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    b = backend(**QUICK)
    token, _ = agent(b, "8001")
    b.api(token, "POST", "/api/v1/agents/me/pause", {"reason": "meeting"})
    who = caller("5001")
    plan = CallPlan(number="12371", caller=who, answer_wait_ms=100, hold_ms=8000)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.summary()
    assert seen.user_events("HotlineVoicemail"), seen.summary()  # a voice message offered
    assert not seen.user_events("HotlineFallback"), seen.summary()  # not as a failure
    assert ("hotline-queue", "GotoIf", "1?hotline-fallback,voicemail,1") in seen.dialplan
    rows = await queue_log(database)
    (call_id,) = {r["call_id"] for r in rows if r["event"] == "ENTERQUEUE"}
    assert events_of(rows, call_id) == ["ENTERQUEUE", "EXITWITHTIMEOUT"]


async def test_a_utility_call_goes_only_to_the_agent_with_that_skill(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    # rule H-6: the utility call to an agent who handles that utility
    b = backend(**QUICK)
    _, plain = agent(b, "8001")  # idle longest, but no water skill
    await asyncio.sleep(0.1)
    _, water = agent(b, "8002", {"utility:water": 4})
    async with (
        phone(lab, "8001", answer_after_ms=300, hold_ms=1000) as other,
        phone(lab, "8002", answer_after_ms=300, hold_ms=1500) as desk,
    ):
        assert await direct(lab, "12375", caller("6001"), 10000)
        assert await desk.wait(10)
        await other.stop()
    rows = await queue_log(database)
    (call_id,) = {r["call_id"] for r in rows if r["event"] == "ENTERQUEUE"}
    assert [(r["event"], r["agent"]) for r in rows if r["call_id"] == call_id][:2] == [
        ("ENTERQUEUE", "NONE"),
        ("CONNECT", water),
    ]
    assert plain not in {r["agent"] for r in rows if r["call_id"] == call_id}
