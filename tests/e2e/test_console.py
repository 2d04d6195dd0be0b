"""The agent console in real headless Chromium (Debian's, driven by Playwright) through the lab:
an agent signs in, a citizen who called before calls through the IVR, the pop shows the open
ticket while the agent's SIPp phone still rings, the agent registers the request on the call,
wraps up and is ready again (issue 11's "what it must show"). Screenshots of each step go to the
test's output directory (printed; kept by pytest under its basetemp)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from hotline.agi.ari import AriClient
from hotline.lab.calls import observe_call
from hotline.lab.instance import Lab
from hotline.lab.sipp import CallPlan
from tests.e2e.conftest import LabBackend
from tests.e2e.test_queue import caller, phone, told, wait_for

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STEP = 20_000  # ms a step of the page may take


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        found = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield found
        finally:
            await found.close()


class Shots:
    def __init__(self, page: Page, where: Path) -> None:
        self.page, self.where, self.n = page, where, 0
        where.mkdir(parents=True, exist_ok=True)

    async def take(self, name: str) -> None:
        self.n += 1
        await self.page.screenshot(path=self.where / f"{self.n:02}-{name}.png", full_page=True)


async def sign_in(page: Page, url: str, token: str, extension: str) -> None:
    await page.goto(url + "/console/")
    await page.get_by_test_id("token").fill(token)
    await page.get_by_test_id("extension").fill(extension)
    await page.get_by_test_id("sign-in").click()


async def state_is(page: Page, text: str) -> None:
    await page.get_by_test_id("state").filter(has_text=text).wait_for(timeout=STEP)


async def test_an_agent_takes_a_repeat_callers_call_in_the_console(
    lab: Lab,
    backend: Callable[..., LabBackend],
    ari: AriClient,
    browser: Browser,
    tmp_path: Path,
) -> None:
    b = backend(
        HOTLINE_QUEUE_RING_TIMEOUT="15",
        HOTLINE_QUEUE_WRAP_UP_SECONDS="60",  # ended by the agent's button
        HOTLINE_QUEUE_ANNOUNCE_INTERVAL="60",
    )
    token = b.user("坐席一", "agent")
    who = caller("2001")
    earlier = b.api(  # the citizen called last week: an open ticket on their number
        token,
        "POST",
        "/api/v1/tickets",
        {"type": "help", "channel": "phone", "content": "小区停水三天", "citizen_phone": who},
    )
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    shots = Shots(page, tmp_path / "screenshots")
    print(f"screenshots: {shots.where}")
    await sign_in(page, b.url, token, "8001")
    await state_is(page, "空闲")
    await shots.take("signed-in-ready")

    async with phone(lab, "8001", answer_after_ms=4000, hold_ms=20000) as desk:
        call = asyncio.create_task(observe_call(lab, CallPlan(caller=who, dtmf="1", hold_ms=60000)))
        try:
            # the pop, while the phone still rings: the open ticket, the one the caller carries
            pop = page.get_by_test_id("pop")
            ringing = page.get_by_test_id("pop-phase").filter(has_text="振铃中")
            await ringing.wait_for(timeout=40_000)
            await state_is(page, "振铃")
            assert await page.get_by_test_id("pop-caller").inner_text() == who
            assert earlier["number"] in await page.get_by_test_id("pop-open").inner_text()
            assert await page.get_by_test_id("pop-ticket").inner_text() == earlier["number"]
            assert "menu:1" in await pop.inner_text()  # the IVR path
            await shots.take("pop-while-ringing")

            await page.get_by_test_id("pop-phase").filter(has_text="通话中").wait_for(timeout=STEP)
            await state_is(page, "通话中")
            await shots.take("answered")

            (talk,) = await wait_for(lambda: talks(ari), timeout=10)
            call_id = talk["id"].removeprefix("talk-")

            # the page's call controls: hold (ARI: the caller in a holding bridge), take back
            await page.get_by_test_id("hold").click()

            async def held() -> list[str]:
                bridges = {x["id"]: x for x in await ari.get("/bridges")}
                return (bridges.get(f"hold-{call_id}") or {}).get("channels", [])

            assert await wait_for(held, timeout=10) == [call_id], told(b)
            await page.get_by_test_id("unhold").click()
            await page.get_by_test_id("hold").wait_for(timeout=STEP)
            (talk,) = await talks(ari)
            assert call_id in talk["channels"]

            # the form: the type comes from the IVR; the agent types the request and submits
            await page.get_by_test_id("form-content").fill("停水仍未恢复，请尽快处理")
            await page.get_by_test_id("form-address").fill("幸福路 8 号")
            await shots.take("form-filled")
            await page.get_by_test_id("form-submit").click()
            await page.get_by_test_id("registered").wait_for(timeout=STEP)
            await shots.take("registered")

            found = b.api(token, "GET", f"/api/v1/tickets?phone={who}")["tickets"]
            new = next(t for t in found if t["number"] != earlier["number"])
            ticket = b.api(token, "GET", f"/api/v1/tickets/{new['number']}")
            assert ticket["call_id"] == call_id, told(b)  # the call it was registered on
            assert ticket["registered_by"] == b.api(token, "GET", "/api/v1/me")["id"]
            assert "menu:1" in ticket["ivr_path"]
            assert ticket["repeat_of"]  # the caller's open ticket, carried by the IVR (D-6)
            assert ticket["type"] == "consultation"

            # a consultation answered on the spot from the console (I-5): the ticket closes
            await page.get_by_test_id("answer-text").fill("供水抢修已安排，今晚十点前恢复")
            await page.get_by_test_id("answer-submit").click()
            await page.get_by_test_id("registered").filter(has_text="办结").wait_for(timeout=STEP)
            closed = b.api(token, "GET", f"/api/v1/tickets/{new['number']}")
            assert (closed["state"], closed["closed_how"]) == ("closed", "answered_on_spot"), closed

            # the phone hangs up: wrap-up, ended from the console, ready again
            wrap_up = page.get_by_test_id("state").filter(has_text="话后整理")
            await wrap_up.wait_for(timeout=40_000)  # the phone's 20 s of talk
            await page.get_by_test_id("wrap-up-left").wait_for(timeout=STEP)
            await shots.take("wrap-up")
            await page.get_by_test_id("end-wrap-up").click()
            await state_is(page, "空闲")
            await shots.take("ready-again")
        finally:
            seen = await call
        assert seen.call.ok, seen.summary()
        assert await desk.wait(10)
    assert len(list(shots.where.glob("*.png"))) == 7


async def talks(ari: AriClient) -> list[dict[str, Any]]:
    return [x for x in await ari.get("/bridges") if x["id"].startswith("talk-")]
