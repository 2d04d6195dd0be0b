"""The console page in Debian's headless Chromium on a real backend (no switch needed): the
network between them drops (a TCP relay the test cuts) — the page says it is offline, and once
the network is back it reconnects by itself and shows what changed meanwhile; a second tab that
asks to take over gets the agent, and the first tab says why it stopped."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Page, async_playwright

from tests.backend import Backend, free_port, hotline
from tests.conftest import fresh_database
from tests.integration.test_agent_api import Client, user

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STEP = 20_000


class Relay:
    """A TCP relay to the backend that the test can cut (connections dropped, new ones refused
    at once) and restore: the network between browser and backend, failing."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, free_port()
        self.cut = False
        self.links: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.links |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.links -= {writer, up_writer}

    def drop(self) -> None:
        self.cut = True
        for writer in list(self.links):
            writer.transport.abort()  # no close frame: as a cable pulled

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        async with server:
            yield self


async def sign_in(page: Page, url: str, token: str, take_over: bool = False) -> None:
    await page.goto(url + "/console/")
    await page.get_by_test_id("token").fill(token)
    await page.get_by_test_id("extension").fill("8001")
    if take_over:
        await page.get_by_test_id("take-over").click()
    await page.get_by_test_id("sign-in").click()


async def test_the_page_reconnects_with_what_it_missed_and_a_second_tab_takes_over(
    tmp_path: Path,
) -> None:
    async with fresh_database() as url:
        env = {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
            "HOTLINE_SERVER_AGI_PORT": str(free_port()),
        }
        assert hotline("db", "upgrade", env=env).returncode == 0
        token = user(env, "坐席一", "agent")
        backend = Backend(env).start()
        relay = Relay(int(env["HOTLINE_SERVER_HTTP_PORT"]))
        try:
            async with relay.running(), async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                via = f"http://127.0.0.1:{relay.port}"
                await sign_in(page, via, token)
                state = page.get_by_test_id("state")
                await state.filter(has_text="空闲").wait_for(timeout=STEP)

                relay.drop()  # the network goes; meanwhile the agent is paused elsewhere
                await page.get_by_test_id("offline").wait_for(timeout=STEP)
                await page.screenshot(path=tmp_path / "offline.png")
                pause = {"reason": "lunch"}
                assert (
                    Client(backend).call(token, "POST", "/api/v1/agents/me/pause", pause)[0] == 200
                )
                assert await state.inner_text() == "空闲"  # it cannot know yet
                relay.cut = False  # back: the page reconnects by itself and catches up
                await state.filter(has_text="示忙").wait_for(timeout=STEP)
                await page.get_by_test_id("offline").wait_for(state="hidden", timeout=STEP)

                second = await browser.new_page(viewport={"width": 1400, "height": 900})
                await sign_in(second, via, token, take_over=True)
                await second.get_by_test_id("state").filter(has_text="示忙").wait_for(timeout=STEP)
                notice = page.get_by_test_id("notice").filter(has_text="已在另一页面接管")
                await notice.wait_for(timeout=STEP)
                await page.screenshot(path=tmp_path / "taken-over.png")
                await browser.close()
        finally:
            backend.stop()


async def test_a_supervisors_console_shows_the_sla_watchs_notice_as_it_is_raised(
    tmp_path: Path,
) -> None:
    async with fresh_database() as url:
        env = {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
            "HOTLINE_SERVER_AGI_PORT": str(free_port()),
        }
        assert hotline("db", "upgrade", env=env).returncode == 0
        assert hotline("units", "add", "--id", "water", "--name", "水务", env=env).returncode == 0
        agent, boss = user(env, "坐席一", "agent"), user(env, "班长", "supervisor")
        duty = user(env, "值班领导", "duty_leader")
        user(env, "水务经办", "unit_handler", "water")
        user(env, "水务领导", "unit_leader", "water")  # a staffed unit (D-7)
        backend = Backend(env).start()
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                await sign_in(page, backend.url, boss)
                await page.get_by_test_id("supervisor").wait_for(timeout=STEP)
                leader = await browser.new_page(viewport={"width": 1400, "height": 900})
                await sign_in(leader, backend.url, duty)  # a duty leader watches the floor too
                await leader.get_by_test_id("supervisor").wait_for(timeout=STEP)
                api = Client(backend)
                body = {
                    "type": "help",
                    "channel": "phone",
                    "content": "燃气泄漏",
                    "citizen_name": "钱七",
                }
                status, t = api.call(agent, "POST", "/api/v1/tickets", body)
                assert status == 201, t
                path = f"/api/v1/tickets/{t['number']}/actions"
                mark = {"version": t["version"], "ground": "serious_harm"}
                status, t = api.call(agent, "POST", f"{path}/mark_emergency", mark)
                assert status == 200, t
                alerted = leader.locator(".el-notification").filter(has_text="重大紧急诉求")
                await alerted.wait_for(timeout=STEP)  # the duty leader at once (E-2)
                assert "钱七" not in await alerted.inner_text()
                decide = {"version": t["version"], "respond": True, "unit": "water"}
                assert api.call(duty, "POST", f"{path}/emergency_decision", decide)[0] == 200
                # the dispatchers and supervisors must assign within 10 minutes (E-3)
                shown = page.locator(".el-notification").filter(has_text="应急响应决定")
                await shown.wait_for(timeout=STEP)
                assert t["number"] in await shown.inner_text()
                assert "钱七" not in await shown.inner_text()  # Y-1
                await page.wait_for_timeout(800)  # the notification's slide-in, for the picture
                await page.screenshot(path=tmp_path / "notice.png")
                await browser.close()
        finally:
            backend.stop()
