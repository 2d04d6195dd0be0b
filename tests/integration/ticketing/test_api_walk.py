"""A walk through the HTTP API as a new user would take it, on the real server and PostgreSQL.

Users and units are created with the `hotline` command, the backend runs as `hotline serve`,
and every step is an HTTP request with a bearer token.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hotline.ticketing.actions import ACTIONS, REGISTER_ROLES
from hotline.ticketing.model import Role
from tests.backend import Backend, free_port, hotline
from tests.conftest import fresh_database

UNITS = {"water": "市水务局", "roads": "市住建局", "city": "市城管局", "parks": "市园林局"}
USERS = [  # (key, role, unit, may_unmask)
    ("agent", "agent", "", False),
    ("dispatcher", "dispatcher", "", False),
    ("reviewer", "reviewer", "", False),
    ("supervisor", "supervisor", "", False),
    ("duty_leader", "duty_leader", "", False),
    ("discipline_officer", "discipline_officer", "", False),
    ("admin", "admin", "", False),
    ("water_handler", "unit_handler", "water", True),
    ("water_leader", "unit_leader", "water", False),
    ("roads_handler", "unit_handler", "roads", False),
    ("roads_leader", "unit_leader", "roads", False),
    ("city_handler", "unit_handler", "city", False),
    ("city_leader", "unit_leader", "city", False),
]
PHONE, NAME = "13912345678", "张三丰"


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, tokens: dict[str, str]):
        self.session, self.base, self.tokens = session, base, tokens
        self.ids: dict[tuple[str, str], str] = {}  # (ticket, unit) -> latest assignment id

    def remember(self, ticket: dict[str, Any]) -> None:
        """Units see only their own assignments: keep every id any reply has shown."""
        for a in ticket.get("assignments", []):
            if a["state"] not in ("returned", "withdrawn"):
                self.ids[(ticket["id"], a["unit_id"])] = a["id"]

    async def call(
        self, who: str | None, method: str, path: str, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as resp:
            text = await resp.text()
            return resp.status, json.loads(text)

    async def raw(self, who: str, method: str, path: str, body: str) -> tuple[int, Any]:
        headers = {
            "Authorization": f"Bearer {self.tokens[who]}",
            "Content-Type": "application/json",
        }
        async with self.session.request(
            method, self.base + path, data=body, headers=headers
        ) as resp:
            return resp.status, json.loads(await resp.text())

    async def act(
        self, who: str, ticket: dict[str, Any], action: str, **payload: Any
    ) -> dict[str, Any]:
        status, body = await self.call(
            who,
            "POST",
            f"/api/v1/tickets/{ticket['id']}/actions/{action}",
            {"version": ticket["version"], **payload},
        )
        assert status == 200, (action, body)
        self.remember(body)
        return body  # type: ignore[no-any-return]

    async def refused(
        self, who: str, ticket: dict[str, Any], action: str, **payload: Any
    ) -> dict[str, Any]:
        status, body = await self.call(
            who,
            "POST",
            f"/api/v1/tickets/{ticket['id']}/actions/{action}",
            {"version": ticket["version"], **payload},
        )
        assert status >= 400, (action, body)
        return {"status": status, **body["error"]}


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def database() -> AsyncIterator[str]:
    """One PostgreSQL database for the module's walk (tests use tickets of their own)."""
    async with fresh_database() as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    config = tmp_path_factory.mktemp("api") / "hotline.toml"
    config.write_text('[routing.categories]\nwater_supply = "water"\nstreet = "roads,city"\n')
    env = {
        "HOTLINE_DATABASE_URL": database,
        "HOTLINE_CONFIG": str(config),
        "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
        "HOTLINE_SERVER_AGI_PORT": str(free_port()),
    }
    assert hotline("db", "upgrade", env=env).returncode == 0
    for unit_id, name in UNITS.items():
        out = hotline(
            "units", "add", "--id", unit_id, "--name", name, "--contact", "0510-86001234", env=env
        )
        assert out.returncode == 0, out.stderr
    tokens = {}
    for key, role, unit, may_unmask in USERS:
        args = ["users", "add", "--name", key, "--role", role]
        args += ["--unit", unit] if unit else []
        args += ["--may-unmask"] if may_unmask else []
        out = hotline(*args, env=env)
        assert out.returncode == 0, out.stderr
        tokens[key] = out.stdout.strip().splitlines()[-1]
    backend = Backend(env).start()
    try:
        async with aiohttp.ClientSession() as session:
            global API
            API = Api(session, backend.url, tokens)
            yield API
    finally:
        log = backend.stop()
    assert PHONE not in log  # rule Y-1: never in the backend's log


API: Api | None = None  # the module's client, for find()


def find(ticket: dict[str, Any], unit: str) -> str:
    assert API is not None
    return API.ids[(ticket["id"], unit)]


async def test_a_ticket_from_the_phone_to_the_public_website(api: Api, database: str) -> None:
    # register (rules I-1, I-2)
    status, t = await api.call(
        "agent",
        "POST",
        "/api/v1/tickets",
        {
            "type": "help",
            "channel": "phone",
            "subject": "停水",
            "content": f"小区停水两天，联系人{NAME}，电话{PHONE}",
            "citizen_name": NAME,
            "citizen_phone": PHONE,
            "address": "澄江街道某小区",
        },
    )
    assert status == 201 and re.fullmatch(r"\d{8}-\d{4,}", t["number"])
    assert t["citizen"]["phone"] == PHONE  # the office's view

    # assign to two units with a lead (D-1, D-5)
    t = await api.act("dispatcher", t, "assign", units=["water", "roads"], lead="water")
    assert t["state"] == "assigned" and len(t["assignments"]) == 2

    # units see their own assignments, identity masked (Y-1)
    status, seen = await api.call("roads_handler", "GET", f"/api/v1/tickets/{t['id']}")
    assert status == 200 and seen["citizen"]["phone"] == "139****5678" and seen["masked"]
    assert PHONE not in seen["content"] and NAME not in seen["content"]  # scrubbed text too
    assert {a["unit_id"] for a in seen["assignments"]} == {"roads"}  # its own part only
    status, _ = await api.call("city_handler", "GET", f"/api/v1/tickets/{t['id']}")
    assert status == 404  # not assigned to the city: it does not exist for them

    # sign (D-3), return (D-4): refused return stays, second return refused
    t = await api.act("water_handler", t, "sign", assignment=find(t, "water"))
    t = await api.act(
        "water_handler",
        t,
        "request_return",
        assignment=find(t, "water"),
        reason="非本单位职责",
        basis="三定方案",
        suggested_unit="city",
    )
    t = await api.act(
        "dispatcher",
        t,
        "decide_return",
        assignment=find(t, "water"),
        justified=False,
        note="属供水管网",
    )
    err = await api.refused(
        "water_handler",
        t,
        "request_return",
        assignment=find(t, "water"),
        reason="再退",
        basis="依据",
        suggested_unit="city",
    )
    assert (err["status"], err["code"], err["rule"]) == (409, "second_return_refused", "D-4")

    # roads returns, justified: reassigned to the city
    t = await api.act(
        "roads_handler",
        t,
        "request_return",
        assignment=find(t, "roads"),
        reason="非道路问题",
        basis="权责清单",
        suggested_unit="city",
    )
    t = await api.act(
        "dispatcher",
        t,
        "decide_return",
        assignment=find(t, "roads"),
        justified=True,
        note="理由充分",
        reassign_to=["city"],
    )
    status, _ = await api.call("roads_handler", "GET", f"/api/v1/tickets/{t['id']}")
    assert status == 404  # no longer theirs once the return was accepted (Y-1)
    t = await api.act("city_handler", t, "sign", assignment=find(t, "city"))

    # replies, approved by each unit's leader (H-4), reviewed by the office (H-5)
    for unit in ("water", "city"):
        t = await api.act(
            f"{unit}_handler",
            t,
            "draft_reply",
            assignment=find(t, unit),
            text=f"{UNITS[unit]}已到现场处理，供水已恢复。",
            attachments=["site.jpg"],
        )
        t = await api.act(
            f"{unit}_leader", t, "approve_reply", assignment=find(t, unit), approve=True
        )
    assert t["state"] == "review"
    t = await api.act(
        "reviewer", t, "review", assignment=find(t, "city"), passed=False, note="请说明恢复时间"
    )
    t = await api.act(
        "city_handler",
        t,
        "draft_reply",
        assignment=find(t, "city"),
        text="已于周三14时恢复供水，并告知物业。",
    )
    t = await api.act("city_leader", t, "approve_reply", assignment=find(t, "city"), approve=True)
    for unit in ("water", "city"):
        t = await api.act("reviewer", t, "review", assignment=find(t, unit), passed=True)
    assert t["state"] == "callback"

    # call back (B-1, B-2), close, publish (P-1)
    t = await api.act("agent", t, "callback", result="satisfied")
    assert t["state"] == "closed"
    t = await api.act("supervisor", t, "decide_publication")
    assert t["publication"]["published"] is True

    # the public side shows it without identity (P-2)
    status, public = await api.call(None, "GET", "/public/tickets")
    assert status == 200 and t["number"] in [p["number"] for p in public["tickets"]]
    text = json.dumps(public, ensure_ascii=False)
    assert PHONE not in text and NAME not in text and "供水已恢复" in text
    status, one = await api.call(None, "GET", f"/public/tickets/{t['number']}")
    assert status == 200 and one["number"] == t["number"]
    status, requests = await api.call(None, "GET", "/open311/v2/requests.json")
    (req,) = [r for r in requests if r["service_request_id"] == t["number"]]
    assert req["status"] == "closed" and req["agency_responsible"] == "市水务局"
    assert req["expected_datetime"] and PHONE not in json.dumps(req)

    # the event log tells the whole story, each step with its rule
    status, events = await api.call("supervisor", "GET", f"/api/v1/tickets/{t['id']}/events")
    actions = [(e["action"], e["rule"]) for e in events["events"]]
    assert actions[0] == ("register", "I-1") and ("decide_publication", "P-1") in actions
    assert len(actions) == t["seq"]

    # every look at the identity in clear is on record (Y-1)
    assert t["citizen"]["phone"] == "139****5678"  # action replies are masked
    status, office = await api.call("supervisor", "GET", f"/api/v1/tickets/{t['id']}")
    assert office["citizen"]["phone"] == PHONE
    status, who = await api.call(
        "water_handler", "POST", f"/api/v1/tickets/{t['id']}/identity", {"why": "上门核实"}
    )
    assert status == 200 and who["phone"] == PHONE
    status, _ = await api.call(
        "roads_handler", "POST", f"/api/v1/tickets/{t['id']}/identity", {"why": "看看"}
    )
    assert status == 403
    engine = create_async_engine(database)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT role, why FROM identity_access WHERE ticket_id = :t ORDER BY id"),
                {"t": t["id"]},
            )
        ).all()
    await engine.dispose()
    assert [tuple(r) for r in rows] == [("supervisor", "office view"), ("unit_handler", "上门核实")]


async def test_errors_are_json_with_a_code_and_never_a_500(api: Api) -> None:
    status, t = await api.call(
        "agent",
        "POST",
        "/api/v1/tickets",
        {"type": "consultation", "channel": "phone", "content": "咨询"},
    )
    assert status == 201
    cases = [
        (await api.call(None, "GET", "/api/v1/tickets"), 401, "unauthorized"),
        (
            await api.call("agent", "POST", "/api/v1/tickets", {"type": "gossip"}),
            400,
            "bad_payload",
        ),
        (
            await api.call(
                "agent",
                "POST",
                "/api/v1/tickets",
                {"type": "help", "channel": "provincial_platform", "content": "x"},
            ),
            409,
            "upstream_id_required",
        ),
        (
            await api.call(
                "dispatcher",
                "POST",
                "/api/v1/tickets/nope/actions/assign",
                {"version": 0, "units": ["water"]},
            ),
            404,
            "not_found",
        ),
        (
            await api.call(
                "dispatcher",
                "POST",
                f"/api/v1/tickets/{t['id']}/actions/assign",
                {"units": ["water"]},
            ),
            428,
            "version_required",
        ),
        (
            await api.call(
                "dispatcher",
                "POST",
                f"/api/v1/tickets/{t['id']}/actions/assign",
                {"version": 1.5, "units": ["water"]},
            ),
            400,  # a version of the wrong kind is a bad payload, not a missing one
            "bad_payload",
        ),
        (
            await api.call(
                "dispatcher",
                "POST",
                f"/api/v1/tickets/{t['id']}/actions/assign",
                {"version": 7, "units": ["water"]},
            ),
            409,
            "stale_version",
        ),
        (
            await api.call(
                "dispatcher", "POST", f"/api/v1/tickets/{t['id']}/actions/fly", {"version": 0}
            ),
            404,
            "not_found",
        ),
        (
            await api.call(
                "agent",
                "POST",
                f"/api/v1/tickets/{t['id']}/actions/callback",
                {"version": 0, "result": "satisfied"},
            ),
            409,
            "illegal_transition",
        ),
        (await api.call(None, "GET", "/public/tickets/20990101-0001"), 404, "not_found"),
        (
            await api.call(
                "agent",
                "POST",
                "/api/v1/tickets",
                {"type": "help", "channel": "phone", "content": "x", "citizen_phone": "1" * 40},
            ),
            400,
            "bad_payload",
        ),
        (
            await api.call(
                "agent",
                "POST",
                "/api/v1/tickets",
                {"type": "help", "channel": "phone", "content": "x" * 20_001},
            ),
            400,
            "bad_payload",
        ),
        (
            await api.raw("agent", "POST", "/api/v1/tickets", "[" * 100_000 + "]" * 100_000),
            400,
            "bad_payload",
        ),
        (
            await api.raw(
                "supervisor",
                "POST",
                f"/api/v1/tickets/{t['id']}/actions/decide_extension",
                '{"version": 0, "assignment": "a", "approve": true, "days": NaN}',
            ),
            400,
            "bad_payload",
        ),
    ]
    for (status, body), want_status, want_code in cases:
        assert (status, body["error"]["code"]) == (want_status, want_code), body


async def test_the_same_upstream_id_is_one_ticket(api: Api) -> None:
    # rule I-2
    payload = {
        "type": "complaint",
        "channel": "provincial_platform",
        "upstream_id": "JS-77",
        "content": "噪音扰民",
    }
    first = await api.call("agent", "POST", "/api/v1/tickets", payload)
    again = await api.call("agent", "POST", "/api/v1/tickets", payload)
    assert (first[0], again[0]) == (201, 200)
    assert first[1]["id"] == again[1]["id"]
    assert again[1]["masked"]  # a re-delivery does not show the identity again (Y-1)


async def test_role_matrix_every_role_on_every_action(api: Api) -> None:
    roles = {
        key: Role(role)
        for key, role, _, _ in USERS
        if key
        in (
            "agent",
            "dispatcher",
            "reviewer",
            "supervisor",
            "duty_leader",
            "discipline_officer",
            "admin",
            "water_handler",
            "water_leader",
        )
    }
    status, t = await api.call(
        "agent",
        "POST",
        "/api/v1/tickets",
        {"type": "help", "channel": "phone", "content": "路灯不亮"},
    )
    t = await api.act("dispatcher", t, "assign", units=["water"])
    tried = 0
    for key, role in roles.items():
        status, body = await api.call(
            key, "POST", "/api/v1/tickets", {"type": "help", "channel": "phone", "content": "x"}
        )
        assert (status == 403) == (role not in REGISTER_ROLES), (key, "register", body)
        for name, action in ACTIONS.items():
            status, body = await api.call(
                key, "POST", f"/api/v1/tickets/{t['id']}/actions/{name}", {"version": t["version"]}
            )
            forbidden = status == 403 and body["error"]["code"] == "role_forbidden"
            assert forbidden == (role not in action.roles), (key, name, status, body)
            assert status in (200, 400, 403, 404, 409), (key, name, status, body)
            tried += 1
    assert tried == len(roles) * len(ACTIONS)
    status, body = await api.call("admin", "GET", "/api/v1/tickets")
    assert status == 403  # admin manages users, not tickets


async def test_the_served_openapi_document_is_the_one_the_actions_make(api: Api) -> None:
    from hotline.ticketing.openapi import document

    status, doc = await api.call(None, "GET", "/api/v1/openapi.json")
    assert status == 200 and doc == document()
    assert doc["openapi"].startswith("3.1")
    assert f"/api/v1/tickets/{{ref}}/actions/{next(iter(ACTIONS))}" in doc["paths"]


async def test_only_linked_units_with_a_leader_and_a_handler_get_tickets(api: Api) -> None:
    # rules D-2, D-7: a unit names a responsible leader and a handler before it gets tickets
    _status, t = await api.call(
        "agent",
        "POST",
        "/api/v1/tickets",
        {"type": "help", "channel": "phone", "content": "公园树倒了"},
    )
    err = await api.refused("dispatcher", t, "assign", units=["zoo"])
    assert (err["status"], err["code"], err["rule"]) == (409, "unknown_unit", "D-2")
    err = await api.refused("dispatcher", t, "assign", units=["parks"])  # nobody named yet
    assert (err["code"], err["rule"]) == ("unit_unstaffed", "D-7")
    assert "unit_handler" in err["message"] and "unit_leader" in err["message"]


async def test_the_routing_table_suggests_units_and_the_office_decides(api: Api) -> None:
    # rule D-2
    _status, t = await api.call(
        "agent",
        "POST",
        "/api/v1/tickets",
        {"type": "help", "channel": "wechat", "content": "路面塌陷", "category": "street"},
    )
    assert t["suggested_units"] == ["roads", "city"]
    t = await api.act("dispatcher", t, "assign", units=["roads"])  # the office's judgement
    assert [a["unit_id"] for a in t["assignments"]] == ["roads"]


async def test_a_utility_emergency_is_called_back_by_telephone(api: Api) -> None:
    # rules H-6, B-3
    status, t = await api.call(
        "agent",
        "POST",
        "/api/v1/tickets",
        {"type": "help", "channel": "phone", "content": "燃气泄漏味道", "utility": "water"},
    )
    assert (status, t["utility"]) == (201, "water")
    _status, events = await api.call("supervisor", "GET", f"/api/v1/tickets/{t['id']}/events")
    assert ("three_way_call", "H-6") in [(e["action"], e["rule"]) for e in events["events"]]
    t = await api.act("dispatcher", t, "assign", units=["water"])
    t = await api.act("water_handler", t, "sign", assignment=find(t, "water"))
    t = await api.act(
        "water_handler",
        t,
        "draft_reply",
        assignment=find(t, "water"),
        text="抢修队已到场关阀并修复，现场安全。",
    )
    t = await api.act("water_leader", t, "approve_reply", assignment=find(t, "water"), approve=True)
    t = await api.act("reviewer", t, "review", assignment=find(t, "water"), passed=True)
    err = await api.refused("agent", t, "callback", result="satisfied", method="self_evaluation")
    assert (err["code"], err["rule"]) == ("phone_callback_required", "B-3")
    t = await api.act("agent", t, "callback", result="satisfied", method="phone")
    assert t["state"] == "closed"


async def test_internal_transfers_disappear_from_the_units_and_open311(api: Api) -> None:
    # rules T-5, Y-1: a complaint about a unit's staff is not shown to that unit
    status, t = await api.call(
        "agent",
        "POST",
        "/api/v1/tickets",
        {
            "type": "complaint",
            "channel": "phone",
            "content": f"举报水务局工作人员，电话{PHONE}",
            "citizen_phone": PHONE,
        },
    )
    assert status == 201
    t = await api.act("dispatcher", t, "assign", units=["water"])
    status, requests = await api.call(None, "GET", "/open311/v2/requests.json?status=open")
    (listed,) = [r for r in requests if r["service_request_id"] == t["number"]]
    assert listed["description"] is None  # open requests go out without their text (P-1)
    t = await api.act(
        "discipline_officer",
        t,
        "transfer_internal",
        category="discipline",
        unit="jw",
        unit_name="市纪委监委",
        contact="0510-12388",
    )
    status, _ = await api.call("water_handler", "GET", f"/api/v1/tickets/{t['id']}")
    assert status == 404
    status, mine = await api.call("water_handler", "GET", "/api/v1/tickets")
    assert t["number"] not in [x["number"] for x in mine["tickets"]]
    status, requests = await api.call(None, "GET", "/open311/v2/requests.json")
    assert t["number"] not in [r["service_request_id"] for r in requests]
