"""The satisfaction callback in the lab (rules B-1, B-2): the backend calls the citizen back
through the trunk; SIPp plays the citizen. Key 3 with a reason said after the beep → the ticket
goes back to its unit with the recording; key 1 → closed. A citizen who never answers gets the
configured attempts at the configured spacing, then the self-evaluation code by SMS (a real HTTP
gateway the test runs), and using it on the public page closes the ticket."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from hotline.lab.instance import Lab
from hotline.lab.phone import DutyLine
from tests.backend import free_port
from tests.e2e.conftest import LabBackend
from tests.e2e.test_queue import caller, told, wait_for

pytestmark = pytest.mark.e2e
SPACING = "busy=3,no_answer=3,hung_up=3,no_key=3,rejected=3,failed=3"
QUICK = {
    "HOTLINE_CALLBACK_WINDOW": "00:00-24:00",  # the test runs at any hour
    "HOTLINE_CALLBACK_RING_TIMEOUT": "4",
    "HOTLINE_CALLBACK_SPACING": SPACING,
    "HOTLINE_CALLBACK_ATTEMPTS": "2",
    "HOTLINE_CALLBACK_CALL_SECONDS": "60",
    "HOTLINE_CALLBACK_POLL": "0.5",
}
REPLY = "已关阀抢修，恢复供水并清理路面。"


def citizen(lab: Lab, mode: str = "answer", **kw: Any) -> DutyLine:
    """The citizen's phone: the trunk's contact, at the lab's SIP port + 1."""
    return DutyLine(
        lab.root, f"{lab.home_in_root}/sipp", lab.lab.sip_port + 1, "citizen", mode, **kw
    )


class Office:
    def __init__(self, b: LabBackend) -> None:
        self.b = b
        b.cli("units", "add", "--id", "water", "--name", "市水务集团")
        self.agent = b.user("坐席", "agent")
        self.dispatcher = b.user("派单", "dispatcher")
        self.handler = b.user("水务经办", "unit_handler", "water")
        self.leader = b.user("水务领导", "unit_leader", "water")
        self.reviewer = b.user("审核", "reviewer")

    def ticket(self, number: str) -> dict[str, Any]:
        return dict(self.b.api(self.agent, "GET", f"/api/v1/tickets/{number}"))

    def act(self, token: str, number: str, action: str, **body: Any) -> dict[str, Any]:
        version = self.ticket(number)["version"]
        path = f"/api/v1/tickets/{number}/actions/{action}"
        return dict(self.b.api(token, "POST", path, {"version": version, **body}))

    def to_callback(self, phone: str) -> str:
        """A telephone ticket through its unit's reply and review: due its callback (B-1)."""
        body = {"type": "complaint", "channel": "phone", "content": "小区水管漏水"}
        made = self.b.api(self.agent, "POST", "/api/v1/tickets", {**body, "citizen_phone": phone})
        number = made["number"]
        t = self.act(self.dispatcher, number, "assign", units=["water"])
        aid = t["assignments"][0]["id"]
        self.act(self.handler, number, "sign", assignment=aid)
        self.act(self.handler, number, "draft_reply", assignment=aid, text=REPLY)
        self.act(self.leader, number, "approve_reply", assignment=aid, approve=True)
        t = self.act(self.reviewer, number, "review", assignment=aid, passed=True)
        assert t["state"] == "callback"
        return str(number)

    def callbacks(self, number: str) -> list[dict[str, Any]]:
        path = f"/api/v1/tickets/{number}/callbacks"
        return list(self.b.api(self.reviewer, "GET", path)["callbacks"])

    async def state(self, number: str, wanted: str, timeout: float = 90) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            t = self.ticket(number)
            return t if t["state"] == wanted else None

        found = await wait_for(reached, timeout=timeout, every=0.5)
        assert found is not None, f"{number} is {self.ticket(number)['state']}\n{told(self.b)}"
        return found


@contextlib.asynccontextmanager
async def sms_gateway() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A generic SMS gateway (the HTTP adapter's other end): what it was asked to send."""
    sent: list[dict[str, str]] = []

    async def take(request: web.Request) -> web.Response:
        sent.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/sms", take)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/sms", sent
    finally:
        await runner.cleanup()


async def test_key_3_sends_it_back_with_the_reason_and_key_1_closes(
    lab: Lab, backend: Callable[..., LabBackend]
) -> None:
    b = backend(**QUICK)
    office = Office(b)
    # key 3 a second into the intro (it stops it; then the reason's prompt, 6 s, and the beep);
    # speaks from 10 s to 17 s (SIPp's 7 s sample), then hangs up at 20 s: the reason is kept
    speaking = {"speak_after_ms": 9000, "hold_ms": 10000}
    async with citizen(lab, key="3", key_after_ms=1000, **speaking):
        unhappy = office.to_callback(caller("5001"))
        back = await office.state(unhappy, "assigned")
    assert back["rehandled"] == 1  # rule B-2: to its unit again, a fresh handling cycle
    assert [a["unit_id"] for a in back["assignments"] if a["state"] == "assigned"] == ["water"]
    assert back["callbacks"][-1]["result"] == "unsatisfied"
    name = f"survey-{unhappy}-1"
    assert name in back["recordings"], told(b)  # the reason, said after the beep
    audio = b.api(office.reviewer, "GET", f"/api/v1/tickets/{unhappy}/recordings/{name}")
    assert len(audio) > 3 * 16000  # three seconds of speech and more (8 kHz, 16-bit)
    [campaign] = office.callbacks(unhappy)
    assert [a["outcome"] for a in campaign["attempts"]] == ["answered"]

    async with citizen(lab, key="1", key_after_ms=1000):
        happy = office.to_callback(caller("5002"))
        closed = await office.state(happy, "closed")
    assert closed["callbacks"][-1]["result"] == "satisfied"
    assert closed["callbacks"][-1]["method"] == "phone"
    assert f"survey-{happy}-1" not in closed["recordings"]
    figures = b.api(office.reviewer, "GET", "/api/v1/callbacks/figures")
    assert figures["all"]["reach_rate"] == 1.0 and figures["all"]["satisfaction_rate"] == 0.5
    metrics = urllib.request.urlopen(b.url + "/metrics", timeout=5).read().decode()
    assert 'hotline_callback_satisfaction_rate{unit="water"} 0.5' in metrics


async def test_a_citizen_who_never_answers_evaluates_on_the_public_page(
    lab: Lab, backend: Callable[..., LabBackend]
) -> None:
    async with sms_gateway() as (url, sent):
        b = backend(**QUICK, HOTLINE_WATCH_SMS="http", HOTLINE_WATCH_SMS_URL=url)
        office = Office(b)
        who = caller("5003")
        async with citizen(lab, "ring", calls=2):  # rings out twice
            number = office.to_callback(who)

            async def texted() -> list[dict[str, str]]:
                return [m for m in sent if m["to"] == who]

            messages = await wait_for(texted, timeout=90, every=0.5)
        assert messages, told(b)
        [campaign] = office.callbacks(number)
        attempts = campaign["attempts"]
        assert [a["outcome"] for a in attempts] == ["no_answer", "no_answer"]
        first_rang = dt.datetime.fromisoformat(attempts[0]["at"]) - dt.datetime.fromisoformat(
            attempts[0]["started"]
        )
        assert first_rang >= dt.timedelta(seconds=4)  # rang the configured 4 s
        gap = dt.datetime.fromisoformat(attempts[1]["started"]) - dt.datetime.fromisoformat(
            attempts[0]["at"]
        )
        assert gap >= dt.timedelta(seconds=3)  # then the configured spacing (no answer: 3 s)
        assert campaign["state"] == "evaluating"
        [text] = [m["text"] for m in messages]
        assert number in text and who not in text  # rule Y-1: the ticket, not the citizen
        code = re.search(r"/evaluate/([A-Za-z0-9_-]+)", text)
        assert code is not None, text
        page = urllib.request.urlopen(f"{b.url}/evaluate/{code[1]}", timeout=5)
        html = page.read().decode()
        assert page.status == 200 and "满意度评价" in html and number in html
        assert 'name="viewport"' in html  # for a phone's screen
        form = urllib.parse.urlencode({"result": "satisfied", "reason": ""}).encode()
        done = urllib.request.urlopen(f"{b.url}/evaluate/{code[1]}", data=form, timeout=5)
        assert done.status == 200 and "感谢" in done.read().decode()
        closed = await office.state(number, "closed", timeout=30)
        assert closed["callbacks"][-1]["method"] == "self_evaluation"
        with pytest.raises(urllib.error.HTTPError) as again:  # it works once
            urllib.request.urlopen(f"{b.url}/evaluate/{code[1]}", data=form, timeout=5)
        assert again.value.code == 410
