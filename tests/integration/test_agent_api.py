"""The agent API on a real backend process: states through the table, refusals with codes,
who may act on whom, the queue and /metrics as the office sees them, and agents on duty again
after a restart."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.backend import Backend, free_port, hotline
from tests.conftest import fresh_database


class Client:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def call(self, token: str, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.backend.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                raw, status, kind = resp.read(), resp.status, resp.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            raw, status, kind = exc.read(), exc.code, exc.headers.get_content_type()
        return status, json.loads(raw) if kind == "application/json" else raw.decode()


def user(env: dict[str, str], name: str, role: str, unit: str = "") -> str:
    extra = ["--unit", unit] if unit else []
    out = hotline("users", "add", "--name", name, "--role", role, *extra, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


async def test_the_agent_api_from_log_in_to_log_out_and_after_a_restart() -> None:
    async with fresh_database() as url:
        env = {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
            "HOTLINE_SERVER_AGI_PORT": str(free_port()),
        }
        walk(env)


def walk(env: dict[str, str]) -> None:
    assert hotline("db", "upgrade", env=env).returncode == 0
    assert hotline("units", "add", "--id", "water", "--name", "水务集团", env=env).returncode == 0
    a1, a2 = user(env, "坐席一", "agent"), user(env, "坐席二", "agent")
    boss = user(env, "班长", "supervisor")
    handler = user(env, "水务经办", "unit_handler", "water")
    backend = Backend(env).start()
    try:
        api = Client(backend)
        status, me = api.call(
            a1,
            "POST",
            "/api/v1/agents/me/login",
            {"extension": "8001", "skills": {"utility:water": 4}},
        )
        assert (status, me["state"], me["extension"]) == (200, "ready", "8001")
        agent1 = me["agent"]
        status, err = api.call(a2, "POST", "/api/v1/agents/me/login", {"extension": "8001"})
        assert (status, err["error"]["code"]) == (409, "extension_taken")  # one agent per phone
        assert api.call(a2, "POST", "/api/v1/agents/me/login", {"extension": "8002"})[0] == 200

        status, me = api.call(a1, "POST", "/api/v1/agents/me/pause", {"reason": "lunch"})
        assert (status, me["state"], me["pause_reason"]) == (200, "paused", "lunch")
        status, err = api.call(a1, "POST", "/api/v1/agents/me/wrap-up/end")
        assert (status, err["error"]["code"]) == (409, "not_in_wrap_up")
        assert api.call(a1, "POST", "/api/v1/agents/me/unpause")[1]["state"] == "ready"

        for bad in ({"reason": "午饭"}, {"reason": "lunch", "after_call": "yes"}, {"why": "x"}):
            status, err = api.call(a1, "POST", "/api/v1/agents/me/pause", bad)
            assert (status, err["error"]["code"]) == (400, "bad_payload"), bad
        status, err = api.call(
            a1,
            "POST",
            "/api/v1/agents/me/login",
            {"extension": "8001", "skills": {"utility:water": 9}},
        )
        assert status == 400

        # who acts on whom
        assert api.call(a2, "POST", f"/api/v1/agents/{agent1}/pause", {"reason": "x"})[0] == 403
        status, me = api.call(boss, "POST", f"/api/v1/agents/{agent1}/pause", {"reason": "coach"})
        assert (status, me["state"], me["pause_reason"]) == (200, "paused", "coach")
        assert api.call(boss, "POST", "/api/v1/agents/me/ready")[0] == 403  # not an agent
        assert api.call(handler, "GET", "/api/v1/queue")[0] == 403  # the office's business

        status, queue = api.call(boss, "GET", "/api/v1/queue")
        assert status == 200 and queue["waiting"] == []
        states = {a["agent"]: a["state"] for a in queue["agents"]}
        assert states[agent1] == "paused" and len(states) == 2
        assert queue["estimated_wait"] == 0.0  # one agent ready, nobody waiting

        status, text = api.call("", "GET", "/metrics")  # public, like /readyz
        assert status == 200
        assert 'hotline_queue_agents{queue="hotline",state="paused"} 1.0' in text
        assert 'hotline_queue_agents{queue="hotline",state="ready"} 1.0' in text
        assert agent1 not in text

        backend.stop()
        backend = Backend(env).start(upgrade=False)  # a restart: agents on duty again
        api = Client(backend)
        status, queue = api.call(boss, "GET", "/api/v1/queue")
        restored = {a["agent"]: (a["state"], a["extension"], a["skills"]) for a in queue["agents"]}
        assert restored[agent1] == ("ready", "8001", {"utility:water": 4})  # skills kept too

        status, me = api.call(a1, "POST", "/api/v1/agents/me/logout")
        assert (status, me["state"], me["logged_in"]) == (200, "logged_out", False)
        status, err = api.call(a1, "POST", "/api/v1/agents/me/ready")
        assert (status, err["error"]["code"]) == (409, "logged_out")
    finally:
        backend.stop()
