"""The utility three-way call in the lab (rule H-6), seen through ARI: a caller talking with
agent 8001; the agent asks for the water company; its first duty number does not answer, the
second answers and presses 1 — caller, agent and utility share one bridge; the agent hangs up
and the two go on talking. Every number busy: the agent is told and the caller is still
bridged with the agent."""

from __future__ import annotations

import array
import asyncio
import contextlib
import io
import json
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hotline.agi.ari import AriClient
from hotline.lab.instance import Lab
from hotline.lab.phone import DutyLine
from hotline.lab.render import utility_port
from tests.e2e.conftest import LabBackend
from tests.e2e.test_console_calls import bridges
from tests.e2e.test_queue import QUICK, agent, caller, direct, phone, queue_log, told, wait_for
from tests.integration.test_console_socket import receive

pytestmark = pytest.mark.e2e
FAST = {**QUICK, "HOTLINE_UTILITY_RING_TIMEOUT": "4"}


def loudest(audio: bytes) -> int:
    """The largest sample of a 16-bit WAV (Asterisk records signed linear)."""
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getsampwidth() == 2, w.getsampwidth()
        frames = w.readframes(w.getnframes())
    samples = array.array("h", frames)
    return max((abs(s) for s in samples), default=0)


def duty(lab: Lab, endpoint: str, mode: str, **kw: Any) -> DutyLine:
    return DutyLine(
        lab.root,
        f"{lab.home_in_root}/sipp",
        utility_port(lab.lab.sip_port, endpoint),
        endpoint.removeprefix("utility-"),
        mode,
        **kw,
    )


async def hang_up(ari: AriClient, call_id: str) -> None:
    """The caller's side ends the test's call (gone already: nothing)."""
    if call_id:
        with contextlib.suppress(Exception):
            await ari.delete(f"/channels/{call_id}")


def in_talk(
    ari: AriClient, call_id: str, parties: int
) -> Callable[[], Awaitable[list[str] | None]]:
    """A check: the call's talk bridge holds this many channels (they, or None)."""

    async def check() -> list[str] | None:
        channels = (await bridges(ari)).get(f"talk-{call_id}", {}).get("channels", [])
        return list(channels) if len(channels) == parties else None

    return check


async def talking(ari: AriClient) -> str:
    async def talk() -> list[str]:
        found = await bridges(ari)
        return [k for k, x in found.items() if k.startswith("talk-") and len(x["channels"]) == 2]

    (bridge,) = await wait_for(talk, timeout=30)
    return str(bridge).removeprefix("talk-")


async def test_the_second_duty_number_answers_three_share_a_bridge_and_two_stay(
    lab: Lab, backend: Callable[..., LabBackend], ari: AriClient
) -> None:
    b = backend(**FAST)
    token, _ = agent(b, "8001")
    async with (
        phone(lab, "8001", answer_after_ms=300, hold_ms=60000),
        duty(lab, "utility-water", "ring"),
        duty(lab, "utility-water-2", "answer", key_after_ms=1000) as second,
    ):
        call = asyncio.create_task(direct(lab, "12371", caller("3001"), 60000))
        call_id = ""
        try:
            call_id = await talking(ari)
            b.api(token, "POST", f"/api/v1/agents/me/calls/{call_id}/utility", {"utility": "water"})
            leg, agent_leg = f"utility-{call_id}-2", f"offer-{call_id}-1"

            joined = await wait_for(in_talk(ari, call_id, 3), timeout=40)
            assert joined is not None, told(b) + second.output[-2000:]
            assert set(joined) == {call_id, agent_leg, leg}  # one bridge, three parties
            found = await bridges(ari)
            assert found[f"talk-{call_id}"]["bridge_type"] == "mixing"

            await ari.delete(f"/channels/{agent_leg}")  # the agent hangs up and leaves

            two = in_talk(ari, call_id, 2)
            assert await wait_for(two, timeout=15), told(b)
            await asyncio.sleep(1.5)
            assert set(await two() or []) == {call_id, leg}  # they go on talking
            rows = await queue_log(b.env["HOTLINE_DATABASE_URL"])
            mine = [(r["event"], r["data"]) for r in rows if r["call_id"] == call_id]
            tried = [d.split("|")[2] for e, d in mine if e == "UTILITYEND"]
            assert tried == ["no_answer"]  # the first rang out
            assert [d.split("|")[0] for e, d in mine if e == "UTILITYCONNECT"] == [
                "PJSIP/utility-water-2"
            ]
        finally:
            await hang_up(ari, call_id)
            await asyncio.wait_for(call, 90)


async def test_every_duty_number_busy_leaves_the_caller_with_the_agent_who_is_told(
    lab: Lab, backend: Callable[..., LabBackend], ari: AriClient
) -> None:
    b = backend(**FAST)
    token, agent_id = agent(b, "8001")
    url = b.url.replace("http://", "ws://") + "/api/v1/console/socket"
    async with (
        phone(lab, "8001", answer_after_ms=300, hold_ms=60000),
        duty(lab, "utility-gas", "busy"),
        duty(lab, "utility-gas-2", "busy"),
        aiohttp.ClientSession() as http,
        http.ws_connect(url) as ws,
    ):
        await ws.send_str(json.dumps({"type": "hello", "token": token}))
        assert (await receive(ws, "welcome"))["agent"] == agent_id
        call = asyncio.create_task(direct(lab, "12371", caller("3002"), 60000))
        call_id = ""
        try:
            call_id = await talking(ari)
            await ws.send_str(
                json.dumps({"type": "utility", "id": 1, "call": call_id, "utility": "gas"})
            )
            while True:
                message = await receive(ws)
                if message["type"] == "utility":
                    break
            assert message["connected"] is None, told(b)
            assert [a["outcome"] for a in message["attempts"]] == ["busy", "busy"]
            found = await bridges(ari)
            channels = set(found[f"talk-{call_id}"]["channels"])
            assert channels == {call_id, f"offer-{call_id}-1"}  # back with the agent
            assert call_id not in found.get(f"hold-{call_id}", {}).get("channels", [])
        finally:
            await hang_up(ari, call_id)
            await asyncio.wait_for(call, 90)


async def test_a_declining_line_is_rejected_and_the_caller_hanging_up_cancels_the_next(
    lab: Lab, backend: Callable[..., LabBackend], ari: AriClient
) -> None:
    b = backend(**{**FAST, "HOTLINE_UTILITY_RING_TIMEOUT": "20"})
    token, _ = agent(b, "8001")
    async with (
        phone(lab, "8001", answer_after_ms=300, hold_ms=60000),
        duty(lab, "utility-power", "decline"),
        duty(lab, "utility-power-2", "ring") as ringing,
    ):
        call = asyncio.create_task(direct(lab, "12371", caller("3003"), 60000))
        call_id = ""
        try:
            call_id = await talking(ari)
            b.api(token, "POST", f"/api/v1/agents/me/calls/{call_id}/utility", {"utility": "power"})
            leg = f"utility-{call_id}-2"

            async def rung() -> bool:
                return any(c["id"] == leg for c in await ari.get("/channels"))

            assert await wait_for(rung, timeout=15), told(b)
            await ari.delete(f"/channels/{call_id}")  # the citizen hangs up while it rings

            async def cancelled() -> bool:
                return not await rung()

            assert await wait_for(cancelled, timeout=10), told(b)  # nothing rings on
            rows = await queue_log(b.env["HOTLINE_DATABASE_URL"])
            ends = [r["data"].split("|")[2] for r in rows if r["event"] == "UTILITYEND"]
            assert ends[:2] == ["rejected", "caller_gone"], (ends, ringing.output[-1500:])
        finally:
            await hang_up(ari, call_id)
            await asyncio.wait_for(call, 90)


async def test_a_water_emergency_from_the_ivr_put_through_from_the_console(
    lab: Lab, backend: Callable[..., LabBackend], ari: AriClient, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    from hotline.lab.calls import observe_call
    from hotline.lab.sipp import CallPlan
    from tests.e2e.test_console import CHROMIUM, STEP, Shots, sign_in, state_is

    b = backend(**FAST, HOTLINE_QUEUE_WIDEN_AFTER="0", HOTLINE_QUEUE_WIDEN_ALL_AFTER="0")
    b.cli("units", "add", "--id", "water", "--name", "市水务集团")
    handler = b.user("水务经办", "unit_handler", "water")
    leader = b.user("水务领导", "unit_leader", "water")
    reviewer = b.user("审核", "reviewer")
    token = b.user("坐席一", "agent")
    who = caller("3004")
    async with (
        async_playwright() as p,
        phone(lab, "8001", answer_after_ms=500, hold_ms=60000),
        duty(lab, "utility-water", "answer", key_after_ms=800),
    ):
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        shots = Shots(page, tmp_path / "screenshots")
        await sign_in(page, b.url, token, "8001")
        await state_is(page, "空闲")
        plan = CallPlan(caller=who, dtmf="51", hold_ms=60000)  # 5: utilities, 1: water
        call = asyncio.create_task(observe_call(lab, plan))
        call_id = ""
        try:
            await (
                page.get_by_test_id("pop-phase").filter(has_text="通话中").wait_for(timeout=60_000)
            )
            call_id = await talking(ari)
            await page.get_by_test_id("form-content").fill("主干道水管爆裂，路面积水")
            await page.get_by_test_id("form-address").fill("人民路 12 号")
            await page.get_by_test_id("form-submit").click()
            await page.get_by_test_id("registered").wait_for(timeout=STEP)
            await shots.take("registered")
            await page.get_by_test_id("utility-water").click()  # 接通水务

            joined = await wait_for(in_talk(ari, call_id, 3), timeout=40)
            assert joined is not None, told(b)
            assert set(joined) == {call_id, f"offer-{call_id}-1", f"utility-{call_id}-1"}
            await page.locator(".el-alert").filter(has_text="三方通话已接通").wait_for(timeout=STEP)
            await shots.take("three-way")

            tickets = b.api(token, "GET", f"/api/v1/tickets?phone={who}")["tickets"]
            (mine,) = tickets

            async def assigned() -> dict[str, Any] | None:
                found = b.api(token, "GET", f"/api/v1/tickets/{mine['number']}")
                return found if found["state"] == "assigned" else None

            ticket = await wait_for(assigned, timeout=10)
            assert ticket is not None, told(b)
            assert [a["unit_id"] for a in ticket["assignments"]] == ["water"]  # rule H-6
            assert ticket["utility"] == "water" and ticket["call_id"] == call_id
            assert ticket["three_way"][0]["connected"] == "PJSIP/utility-water"

            await ari.delete(f"/channels/offer-{call_id}-1")  # the agent leaves

            two = await wait_for(in_talk(ari, call_id, 2), timeout=15)
            assert set(two or []) == {call_id, f"utility-{call_id}-1"}, told(b)
            await asyncio.sleep(4)  # the duty line speaks; the citizen hears it (recorded)
            await hang_up(ari, call_id)  # the citizen hangs up last: the call is over

            name = f"conf-{call_id}"

            async def attached() -> dict[str, Any] | None:
                found = b.api(token, "GET", f"/api/v1/tickets/{mine['number']}")
                return found if name in found["recordings"] else None

            assert await wait_for(attached, timeout=30), told(b)
            audio = b.api(token, "GET", f"/api/v1/tickets/{mine['number']}/recordings/{name}")
            assert loudest(audio) > 1000, "the recording is silent"  # it has sound

            # the unit feeds its result back; then the citizen is called back by telephone
            ref = f"/api/v1/tickets/{mine['number']}/actions"
            aid = ticket["assignments"][0]["id"]
            steps = [
                (handler, "sign", {}),
                (handler, "draft_reply", {"text": "已关阀抢修，恢复供水并清理路面。"}),
                (leader, "approve_reply", {"approve": True}),
                (reviewer, "review", {"passed": True}),
            ]
            for who_acts, action, body in steps:
                version = b.api(token, "GET", f"/api/v1/tickets/{mine['number']}")["version"]
                b.api(
                    who_acts,
                    "POST",
                    f"{ref}/{action}",
                    {"version": version, "assignment": aid, **body},
                )
            tasks = b.api(token, "GET", "/api/v1/tasks")["tasks"]
            assert [t["kind"] for t in tasks if t["ticket"] == mine["number"]] == ["phone_callback"]
            await browser.close()
        finally:
            await hang_up(ari, call_id)
            await asyncio.wait_for(call, 90)


async def test_a_duty_line_that_hangs_up_at_once_is_passed_over_for_the_next(
    lab: Lab, backend: Callable[..., LabBackend], ari: AriClient
) -> None:
    b = backend(**FAST)
    token, _ = agent(b, "8001")
    async with (
        phone(lab, "8001", answer_after_ms=300, hold_ms=60000),
        duty(lab, "utility-gas", "drop"),
        duty(lab, "utility-gas-2", "answer", key_after_ms=800),
    ):
        call = asyncio.create_task(direct(lab, "12371", caller("3005"), 60000))
        call_id = ""
        try:
            call_id = await talking(ari)
            b.api(token, "POST", f"/api/v1/agents/me/calls/{call_id}/utility", {"utility": "gas"})

            joined = await wait_for(in_talk(ari, call_id, 3), timeout=40)
            assert joined is not None and f"utility-{call_id}-2" in joined, told(b)
            rows = await queue_log(b.env["HOTLINE_DATABASE_URL"])
            ends = [r["data"].split("|")[2] for r in rows if r["event"] == "UTILITYEND"]
            assert ends == ["rejected"]  # answered and hung up at once: the next was rung
        finally:
            await hang_up(ari, call_id)
            await asyncio.wait_for(call, 90)


async def test_a_backend_restarted_mid_conference_leaves_the_call_going_and_records_its_end(
    lab: Lab, backend: Callable[..., LabBackend], ari: AriClient
) -> None:
    b = backend(**FAST)
    token, _ = agent(b, "8001")
    async with (
        phone(lab, "8001", answer_after_ms=300, hold_ms=60000),
        duty(lab, "utility-water", "answer", key_after_ms=800),
    ):
        call = asyncio.create_task(direct(lab, "12371", caller("3006"), 60000))
        call_id = ""
        try:
            call_id = await talking(ari)
            ticket = b.api(
                token,
                "POST",
                "/api/v1/tickets",
                {"type": "help", "channel": "phone", "content": "水管爆裂", "call_id": call_id},
            )
            b.api(token, "POST", f"/api/v1/agents/me/calls/{call_id}/utility", {"utility": "water"})
            leg, agent_leg = f"utility-{call_id}-1", f"offer-{call_id}-1"
            joined = await wait_for(in_talk(ari, call_id, 3), timeout=40)
            assert joined is not None, told(b)
            await wait_for(lambda: recording_live(ari, f"conf-{call_id}"), timeout=15)

            b.kill9()  # the node dies mid-conference
            b.start(upgrade=False)
            await asyncio.sleep(3)
            assert set(await in_talk(ari, call_id, 3)() or []) == {call_id, agent_leg, leg}
            await ari.delete(f"/channels/{agent_leg}")  # the agent leaves after the restart
            assert await wait_for(in_talk(ari, call_id, 2), timeout=15)
            await hang_up(ari, call_id)  # the citizen hangs up: the new node ends the utility

            async def utility_gone() -> bool:
                return not any(c["id"] == leg for c in await ari.get("/channels"))

            assert await wait_for(utility_gone, timeout=20), told(b)
            rows = await queue_log(b.env["HOTLINE_DATABASE_URL"])
            ends = [r["data"].split("|") for r in rows if r["event"] == "UTILITYEND"]
            assert [(e[0], e[1], e[2]) for e in ends] == [
                ("PJSIP/utility-water", leg, "completed")
            ], told(b)

            async def attached() -> bool:
                found = b.api(token, "GET", f"/api/v1/tickets/{ticket['number']}")
                return f"conf-{call_id}" in found["recordings"]

            assert await wait_for(attached, timeout=30), told(b)
        finally:
            await hang_up(ari, call_id)
            await asyncio.wait_for(call, 90)


async def recording_live(ari: AriClient, name: str) -> bool:
    try:
        await ari.get(f"/recordings/live/{name}")
    except Exception:
        return False
    return True
