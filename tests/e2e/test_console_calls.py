"""Call control from the console socket, seen through ARI in the lab: hold puts the caller in a
holding bridge and unhold brings it back to the agent; a blind transfer from agent 8001 to 8002
ends 8001's call and bridges the caller with 8002 (issue 11)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from hotline.agi.ari import AriClient
from hotline.lab.instance import Lab
from tests.e2e.conftest import LabBackend
from tests.e2e.test_queue import QUICK, agent, caller, direct, phone, state_of, told, wait_for
from tests.integration.test_console_socket import receive

pytestmark = pytest.mark.e2e


async def bridges(ari: AriClient) -> dict[str, dict[str, Any]]:
    return {b["id"]: b for b in await ari.get("/bridges")}


async def command(ws: aiohttp.ClientWebSocketResponse, kind: str, **fields: Any) -> dict[str, Any]:
    await ws.send_str(json.dumps({"type": kind, "id": kind, **fields}))
    while True:
        reply = await receive(ws)
        if reply.get("ref") == kind:
            return reply


async def test_hold_unhold_and_a_blind_transfer_from_8001_to_8002(
    lab: Lab, backend: Callable[..., LabBackend], ari: AriClient
) -> None:
    b = backend(**QUICK)
    first, first_id = agent(b, "8001")
    second, second_id = agent(b, "8002")
    await asyncio.sleep(0.2)
    b.api(second, "POST", "/api/v1/agents/me/pause", {"reason": "meeting"})  # 8001 gets it
    url = b.url.replace("http://", "ws://") + "/api/v1/console/socket"
    async with (
        phone(lab, "8001", answer_after_ms=500, hold_ms=60000) as desk1,
        phone(lab, "8002", answer_after_ms=500, hold_ms=4000) as desk2,
        aiohttp.ClientSession() as http,
        http.ws_connect(url) as ws,
    ):
        await ws.send_str(json.dumps({"type": "hello", "token": first}))
        assert (await receive(ws, "welcome"))["agent"] == first_id
        call = asyncio.create_task(direct(lab, "12371", caller("3001"), 60000))
        try:

            async def talk() -> list[dict[str, Any]]:
                found = await bridges(ari)
                return [
                    x for k, x in found.items() if k.startswith("talk-") and len(x["channels"]) == 2
                ]

            (bridge,) = await wait_for(talk, timeout=30)
            call_id = bridge["id"].removeprefix("talk-")
            assert state_of(b, first, first_id) == "talking"

            # a command for a call that is not the agent's: refused, the socket goes on
            other = await command(ws, "hold", call="someone-elses-call")
            assert (other["type"], other["code"]) == ("error", "not_your_call")

            assert (await command(ws, "hold", call=call_id))["type"] == "ok"
            found = await bridges(ari)
            assert found[f"hold-{call_id}"]["bridge_type"] == "holding", told(b)
            assert found[f"hold-{call_id}"]["channels"] == [call_id]
            assert call_id not in found[f"talk-{call_id}"]["channels"]  # the agent waits alone

            assert (await command(ws, "unhold", call=call_id))["type"] == "ok"
            found = await bridges(ari)
            assert call_id in found[f"talk-{call_id}"]["channels"], told(b)
            assert call_id not in found.get(f"hold-{call_id}", {}).get("channels", [])

            b.api(second, "POST", "/api/v1/agents/me/unpause")
            moved = await command(ws, "transfer", call=call_id, to="agent", extension="8002")
            assert moved["type"] == "ok"

            async def with_8002() -> list[str]:
                found = await bridges(ari)
                legs = (found.get(f"talk-{call_id}") or {}).get("channels", [])
                names = {c["id"]: c["name"] for c in await ari.get("/channels")}
                return [c for c in legs if names.get(c, "").startswith("PJSIP/8002-")]

            assert await wait_for(with_8002, timeout=20) == [f"offer-{call_id}-2"], told(b)
            found = await bridges(ari)
            assert call_id in found[f"talk-{call_id}"]["channels"]  # the caller with 8002
            assert state_of(b, second, second_id) == "talking"
            assert state_of(b, first, first_id) in ("wrap_up", "ready")  # 8001's call is over
        finally:
            assert await call, told(b)
        assert await desk1.wait(10) and await desk2.wait(10)
