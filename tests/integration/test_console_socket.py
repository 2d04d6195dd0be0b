"""The console's socket on a real backend process (PostgreSQL): hello and its refusals with the
documented close codes, commands and their replies, bad input answered on a socket that stays
usable, one live session per agent (a second console takes over only when it asks), a resume
that gets what was missed, and shutdown closing with GOING_AWAY."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from hotline.softphone_bridge import protocol
from tests.backend import Backend, free_port, hotline
from tests.conftest import fresh_database
from tests.integration.test_agent_api import Client, user


async def receive(ws: aiohttp.ClientWebSocketResponse, kind: str | None = None) -> dict[str, Any]:
    """The next message (of ``kind``, skipping others)."""
    while True:
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data, message.extra)
        body: dict[str, Any] = json.loads(message.data)
        if kind is None or body["type"] == kind:
            return body


async def closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read to the close frame; its code."""
    while True:
        message = await ws.receive(timeout=10)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code


async def test_the_console_socket_from_hello_to_shutdown() -> None:
    async with fresh_database() as url:
        env = {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
            "HOTLINE_SERVER_AGI_PORT": str(free_port()),
        }
        assert hotline("db", "upgrade", env=env).returncode == 0
        agent = user(env, "坐席一", "agent")
        handler_unit = hotline("units", "add", "--id", "water", "--name", "水务", env=env)
        assert handler_unit.returncode == 0
        handler = user(env, "水务经办", "unit_handler", "water")
        boss = user(env, "班长", "supervisor")
        env["HOTLINE_SERVER_CONSOLE_TOKEN_RECHECK"] = "1"
        backend = Backend(env).start()
        try:
            await walk(backend, agent, handler, boss)
        finally:
            backend.stop()


async def walk(backend: Backend, agent: str, handler: str, boss: str) -> None:
    url = backend.url.replace("http://", "ws://") + "/api/v1/console/socket"
    api = Client(backend)
    assert api.call(agent, "POST", "/api/v1/agents/me/login", {"extension": "8001"})[0] == 200
    async with aiohttp.ClientSession() as http:
        # refused: no hello, no token, an unknown token, a unit's handler
        ws = await http.ws_connect(url)
        await ws.send_str(json.dumps({"type": "ready"}))
        assert (await receive(ws))["code"] == "no_hello"
        assert await closed(ws) == protocol.NO_HELLO
        for hello, code in (
            ({"type": "hello"}, protocol.UNAUTHORIZED),
            ({"type": "hello", "token": "not-a-token"}, protocol.UNAUTHORIZED),
            ({"type": "hello", "token": handler}, protocol.FORBIDDEN),
        ):
            ws = await http.ws_connect(url)
            await ws.send_str(json.dumps(hello))
            assert (await receive(ws))["type"] == "error"
            assert await closed(ws) == code, hello

        # the agent's console: welcome, then its state
        first = await http.ws_connect(url)
        await first.send_str(json.dumps({"type": "hello", "token": agent}))
        welcome = await receive(first)
        assert welcome["type"] == "welcome" and welcome["resumed"] is False
        state = await receive(first)
        assert state["type"] == "state" and state["state"] == "ready"  # logged in: ready
        assert state["extension"] == "8001" and state["pop"] is None

        # a command, its reply (the id echoed) and the state change it made, numbered
        await first.send_str(json.dumps({"type": "pause", "reason": "meeting", "id": 7}))
        replies = [await receive(first), await receive(first)]
        by_type = {r["type"]: r for r in replies}
        assert by_type["ok"]["ref"] == 7 and by_type["ok"]["state"] == "paused"
        change = by_type["agent_state"]
        assert (change["before"], change["state"]) == ("ready", "paused")
        assert change["pause_reason"] == "meeting"
        assert change["seq"] == welcome["seq"] + 1

        # bad input: an error each time, and the socket goes on
        huge = json.dumps({"type": "ping", "pad": "x" * (protocol.MAX_TEXT + 10)})
        for bad, code in (
            ("not json", "not_json"),
            ("[1, 2]", "not_json"),
            (json.dumps({"type": "dance"}), "unknown_type"),
            (json.dumps({"type": "pause", "reason": "Lunch Break!"}), "bad_field"),
            (json.dumps({"type": "hang_up", "call": "someone-elses-call"}), "not_your_call"),
            (json.dumps({"type": "end_wrap_up"}), "not_in_wrap_up"),
            (huge, "too_big"),
        ):
            await first.send_str(bad)
            error = await receive(first)
            assert (error["type"], error["code"]) == ("error", code), (bad[:60], error)
        await first.send_bytes(b"\x00\x01")
        assert (await receive(first))["code"] == "not_json"
        await first.send_str(json.dumps({"type": "ping", "id": "p1"}))
        assert (await receive(first)) == {"type": "pong", "ref": "p1", "seq": change["seq"]}

        # the same controls over the HTTP API, with statuses
        for path, body, status, code in (
            ("someone-elses-call/hold", None, 403, "not_your_call"),
            ("someone-elses-call/transfer", {"to": "agent"}, 400, "bad_field"),
            ("someone-elses-call/transfer", {"to": "queue", "x": 1}, 400, "bad_field"),
            ("a/b/hang-up", None, 404, None),
        ):
            got = api.call(agent, "POST", f"/api/v1/agents/me/calls/{path}", body)
            assert got[0] == status, (path, got)
            if code:
                assert got[1]["error"]["code"] == code, (path, got)
        got = api.call(handler, "POST", "/api/v1/agents/me/calls/c1/hold")
        assert (got[0], got[1]["error"]["code"]) == (403, "role_forbidden")

        # a second console is refused until it asks to take over; the first is told why
        second = await http.ws_connect(url)
        await second.send_str(json.dumps({"type": "hello", "token": agent}))
        assert (await receive(second))["code"] == "session_active"
        await second.send_str(json.dumps({"type": "hello", "token": agent, "take_over": True}))
        assert (await receive(second))["type"] == "welcome"
        assert (await receive(second))["state"] == "paused"
        assert (await receive(first))["type"] == "taken_over"
        assert await closed(first) == protocol.TAKEN_OVER

        # changes while no console listens are resumed from the last number seen
        seen = change["seq"]
        await second.close()
        assert api.call(agent, "POST", "/api/v1/agents/me/unpause")[0] == 200
        assert api.call(agent, "POST", "/api/v1/agents/me/pause", {"reason": "lunch"})[0] == 200
        third = await http.ws_connect(url)
        await third.send_str(json.dumps({"type": "hello", "token": agent, "last_seq": seen}))
        welcome = await receive(third)
        assert welcome["resumed"] is True
        missed = [await receive(third), await receive(third)]
        assert [(m["type"], m["state"], m["seq"]) for m in missed] == [
            ("agent_state", "ready", seen + 1),
            ("agent_state", "paused", seen + 2),
        ]
        assert missed[1]["pause_reason"] == "lunch"
        now = await receive(third)
        assert (now["type"], now["state"], now["seq"]) == ("state", "paused", seen + 2)
        assert now["pause_reason"] == "lunch"

        # a token revoked while connected: closed with 4401 (checked every second here)
        out = hotline("users", "revoke", "--id", welcome["agent"], env=backend.env)
        assert out.returncode == 0, out.stderr
        assert (await receive(third, "error"))["code"] == "unauthorized"
        assert await closed(third) == protocol.UNAUTHORIZED
        again = await http.ws_connect(url)
        await again.send_str(json.dumps({"type": "hello", "token": agent}))
        assert (await receive(again))["code"] == "unauthorized"
        assert await closed(again) == protocol.UNAUTHORIZED

        # shutdown: GOING_AWAY
        other = await http.ws_connect(url)
        await other.send_str(json.dumps({"type": "hello", "token": boss}))
        assert (await receive(other, "welcome"))["role"] == "supervisor"
        view = await receive(other, "queue")  # the supervisor's queue view, pushed
        assert view["waiting"] == [] and view["today"]["answered"] == 0
        assert backend.proc is not None
        backend.proc.terminate()
        assert await asyncio.wait_for(closed(other), 15) == protocol.GOING_AWAY
