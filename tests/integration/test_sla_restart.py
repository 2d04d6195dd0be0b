"""The SLA watch in a real backend process on PostgreSQL: a reminder scheduled before the
backend stops fires once after it starts again — not zero times, not twice — and the overdue
mark after it; the notifications and violations as the API shows them. The emergency plan's
clock (wall clock, rule C-4) is shortened to seconds so the test runs on the real clock."""

from __future__ import annotations

import time
from typing import Any

from tests.backend import Backend, free_port, hotline
from tests.conftest import fresh_database
from tests.integration.test_agent_api import Client, user

ASSIGN_SECONDS, REMIND_BEFORE = 30, 15  # E-3's 10 minutes and the reminder 3 before, scaled


def kinds(api: Client, token: str, query: str = "") -> list[tuple[str, str | None]]:
    status, body = api.call(token, "GET", "/api/v1/notifications" + query)
    assert status == 200, body
    return [(n["kind"], n["ticket"]) for n in body["notifications"]]


def wait_for(probe: Any, timeout: float) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    return probe()


async def test_a_reminder_due_while_the_backend_was_down_fires_once_after_the_restart() -> None:
    async with fresh_database() as url:
        env = {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
            "HOTLINE_SERVER_AGI_PORT": str(free_port()),
            "HOTLINE_RULES_EMERGENCY_ASSIGN_MINUTES": str(ASSIGN_SECONDS / 60),
            "HOTLINE_WATCH_REMIND_EMERGENCY_ASSIGN_MINUTES": str(REMIND_BEFORE / 60),
        }
        assert hotline("db", "upgrade", env=env).returncode == 0
        assert hotline("units", "add", "--id", "water", "--name", "水务", env=env).returncode == 0
        agent, disp = user(env, "坐席", "agent"), user(env, "派单", "dispatcher")
        duty = user(env, "值班领导", "duty_leader")
        handler = user(env, "水务经办", "unit_handler", "water")
        user(env, "水务领导", "unit_leader", "water")
        backend = Backend(env).start()
        try:
            api = Client(backend)
            status, t = api.call(
                agent,
                "POST",
                "/api/v1/tickets",
                {
                    "type": "help",
                    "channel": "phone",
                    "content": "主干道水管爆裂",
                    "citizen_name": "赵敏",
                    "citizen_phone": "13698765432",
                },
            )
            assert status == 201, t
            number = t["number"]
            status, t = api.call(
                agent,
                "POST",
                f"/api/v1/tickets/{number}/actions/mark_emergency",
                {"version": t["version"], "ground": "harm_now"},
            )
            assert status == 200, t
            # the duty leader is alerted at once (E-2)
            assert wait_for(lambda: kinds(api, duty), 10) == [("alert", number)]
            status, t = api.call(
                duty,
                "POST",
                f"/api/v1/tickets/{number}/actions/emergency_decision",
                {"version": t["version"], "respond": True, "unit": "water"},
            )
            decided = time.monotonic()
            assert status == 200, t
            assert wait_for(lambda: kinds(api, disp), 10) == [("alert", number)]
            assert wait_for(lambda: kinds(api, handler), 10) == [("alert", number)]
            backend.stop()  # the reminder is scheduled for decided + 15 s

            time.sleep(max(0.0, decided + REMIND_BEFORE + 3 - time.monotonic()))
            backend = Backend(env).start(upgrade=False)  # after the reminder's time
            api = Client(backend)
            found = wait_for(lambda: ("remind", number) in kinds(api, disp), 15)
            assert found, kinds(api, disp)
            time.sleep(max(0.0, decided + ASSIGN_SECONDS + 4 - time.monotonic()))
            assert wait_for(lambda: ("overdue", number) in kinds(api, disp), 15)
            time.sleep(2)  # anything fired twice would be there by now
            assert sorted(kinds(api, disp)) == [  # a late start may claim both in one batch
                ("alert", number),
                ("overdue", number),
                ("remind", number),
            ]  # the reminder once, not zero times, not twice; and the overdue mark
            assert ("overdue", number) in kinds(api, duty)  # escalated to the duty leader

            # read / unread
            status, body = api.call(disp, "GET", "/api/v1/notifications?unread=1")
            first = body["notifications"][0]
            assert "赵敏" not in first["text"] and "13698765432" not in first["text"]  # Y-1
            status, body = api.call(disp, "POST", f"/api/v1/notifications/{first['id']}/read")
            assert (status, body) == (200, {"id": first["id"], "read": True})
            assert len(kinds(api, disp, "?unread=1")) == 2
            assert api.call(handler, "POST", f"/api/v1/notifications/{first['id']}/read")[0] == 404

            # the office's miss on record (S-5); a unit sees only its own
            status, body = api.call(disp, "GET", "/api/v1/violations")
            assert status == 200
            got = [(v["ticket_number"], v["stage"], v["party"]) for v in body["violations"]]
            assert got == [(number, "emergency-assign", "office")]
            status, body = api.call(handler, "GET", "/api/v1/violations")
            assert (status, body["violations"]) == (200, [])
            assert api.call(handler, "GET", "/api/v1/violations?unit=roads")[0] == 403
            status, body = api.call(disp, "GET", "/api/v1/violations?month=2026-13")
            assert (status, body["error"]["code"]) == (400, "bad_payload")
        finally:
            backend.stop()
