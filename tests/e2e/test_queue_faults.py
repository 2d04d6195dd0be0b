"""The ACD under faults, in the lab: the ARI connection cut and restored mid-call, and the only
backend node killed with callers waiting (the dead-man switch inside Asterisk)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from hotline.agi.ari import AriClient
from hotline.lab.instance import Lab
from tests.e2e.conftest import LabBackend
from tests.e2e.test_queue import QUICK, agent, caller, direct, phone, queue_log, told, wait_for
from tests.faults import StampedListener

pytestmark = pytest.mark.e2e


class Proxy:
    """A TCP proxy in front of Asterisk's HTTP port: the backend's ARI goes through it, and
    ``cut`` drops every connection through it at once (REST and the events socket) — what a
    network blip or an Asterisk HTTP restart does to the backend."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.links: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Proxy:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        self.cut()

    def cut(self) -> int:
        cut = len(self.links)
        for writer in list(self.links):
            writer.transport.abort()
        self.links.clear()
        return cut

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.links |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def test_the_ari_socket_cut_mid_call_the_talk_goes_on_and_a_waiting_caller_is_answered(
    lab: Lab, backend: Callable[..., LabBackend], database: str, ari: AriClient
) -> None:
    async with Proxy(lab.lab.http_port) as proxy:
        b = backend(**QUICK, HOTLINE_ARI_URL=f"http://127.0.0.1:{proxy.port}/ari")
        token, agent_id = agent(b, "8001")
        async with phone(lab, "8001", answer_after_ms=300, hold_ms=9000, calls=2) as desk:
            first = asyncio.create_task(direct(lab, "12371", caller("7001"), 30000))

            async def talking() -> list[dict[str, Any]]:
                return [x for x in await ari.get("/bridges") if x["id"].startswith("talk-")]

            (bridge,) = await wait_for(talking)
            second = asyncio.create_task(direct(lab, "12371", caller("7002"), 30000))

            async def two_in_line() -> bool:
                waiting = b.api(token, "GET", "/api/v1/queue")["waiting"]
                return len(waiting) == 1

            assert await wait_for(two_in_line)
            assert proxy.cut() > 0  # the events socket and any REST connection drop
            await asyncio.sleep(2.0)
            still = await ari.get(f"/bridges/{bridge['id']}")  # the talk goes on meanwhile
            assert len(still["channels"]) == 2, told(b)

            async def reconnected() -> bool:
                return bool(proxy.links)

            assert await wait_for(reconnected, timeout=15)
            assert all(await asyncio.gather(first, second)), told(b)
            assert await desk.wait(15), told(b)

    async def both_done() -> list[dict[str, Any]]:
        rows = await queue_log(database)
        return rows if sum(r["event"].startswith("COMPLETE") for r in rows) >= 2 else []

    rows = await wait_for(both_done, timeout=10) or await queue_log(database)
    connects = [r for r in rows if r["event"] == "CONNECT"]
    assert len(connects) == 2, told(b)  # the caller who waited through the cut was answered
    assert {r["agent"] for r in connects} == {agent_id}
    completes = [r for r in rows if r["event"].startswith("COMPLETE")]
    assert len(completes) == 2, told(b)


async def test_kill_9_of_the_only_node_sends_every_waiting_caller_to_the_safe_path_in_30_s(
    lab: Lab, backend: Callable[..., LabBackend]
) -> None:
    b = backend(**QUICK)
    agent(b, "8001")  # on duty but without the water skill: the callers wait in line
    supervisor = b.user("班长", "supervisor")
    creds = lab.credentials()
    callers = [caller(f"80{i:02}") for i in range(3)]
    async with StampedListener(
        "127.0.0.1", lab.lab.ami_port, creds.ami_user, creds.ami_password
    ) as ami:
        # on the line long enough to reach the safe path, not to sit through all of it
        calls = [asyncio.create_task(direct(lab, "12375", who, 40000)) for who in callers]

        async def all_waiting() -> bool:
            return len(b.api(supervisor, "GET", "/api/v1/queue")["waiting"]) == 3

        assert await wait_for(all_waiting, timeout=20, every=1.0)
        assert b.proc is not None
        b.proc.kill()  # kill -9: no shutdown, no goodbye to Asterisk
        killed = time.monotonic()
        b.proc.wait(10)
        await asyncio.sleep(32)
        reached = {}
        for stamp, event in zip(ami.stamps, ami.events, strict=True):
            if event.get("UserEvent") == "HotlineFallback" and stamp > killed:
                reached.setdefault(event.get("CallerIDNum"), stamp - killed)
        dead_man = [e for e in ami.events if e.get("UserEvent") == "HotlineDeadMan"]
        assert all(await asyncio.gather(*calls))  # never dead air: each call ended cleanly
    print(f"kill -9 of the only node: the safe path after {sorted(reached.values())} s")
    assert set(reached) == set(callers), (reached, len(dead_man))
    assert max(reached.values()) <= 30.0, reached
    assert len(dead_man) == 3  # Asterisk's own time-out took them, no backend left
