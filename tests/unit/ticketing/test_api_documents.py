"""The OpenAPI file and the JSON snapshot codec."""

from __future__ import annotations

import json

from hotline.ticketing import codec, openapi
from hotline.ticketing.actions import ACTIONS
from hotline.ticketing.model import CallbackResult
from hotline.ticketing.ticket import Ticket
from tests.unit.ticketing.conftest import AGENT, World
from tests.unit.ticketing.test_ticket_rules import to_callback


def test_the_served_openapi_file_is_up_to_date() -> None:
    # refresh with: hotline api openapi --write
    assert openapi.FILE.read_text(encoding="utf-8") == openapi.render()


def test_every_action_is_documented_with_its_rule_and_roles() -> None:
    doc = openapi.document()
    for name, action in ACTIONS.items():
        op = doc["paths"][f"/api/v1/tickets/{{ref}}/actions/{name}"]["post"]
        assert f"rule {action.rule}" in op["description"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"][0] == "version"
        assert set(body["properties"]) == {"version", *action.fields}


def test_a_ticket_survives_the_json_snapshot() -> None:
    world = World()
    t = world.register()
    to_callback(world, t, ("water", "roads"))
    t.callback(world.ctx(AGENT), CallbackResult.UNSATISFIED, "不满意")
    text = json.dumps(codec.to_json(t), ensure_ascii=False)
    back = codec.load(Ticket, json.loads(text))
    assert back.events == [] and back.pending == []  # events live in their own table
    t.events.clear()
    t.pending.clear()
    assert back == t


def test_every_served_route_is_in_the_document() -> None:
    from hotline.app import build_app
    from hotline.config.settings import load_settings

    app = build_app(load_settings(env={}))  # builds routes; opens nothing
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD for every GET
            continue
        path = route.resource.canonical if route.resource else ""
        if "{action}" in path:  # one documented path per action of the table
            served |= {(route.method.lower(), path.replace("{action}", a)) for a in ACTIONS}
        else:
            served.add((route.method.lower(), path))
    documented = {(m, p) for p, ops in openapi.document()["paths"].items() for m in ops}
    assert served == documented


def test_nothing_but_the_public_read_side_and_health_is_open() -> None:
    open_ = {
        p
        for p, ops in openapi.document()["paths"].items()
        for op in ops.values()
        if op.get("security") == []
    }
    assert open_ == {
        "/public/tickets",
        "/public/tickets/{number}",
        "/open311/v2/requests.json",
        "/healthz",
        "/readyz",  # load balancers ask it; it names what is down, never a host or a text
        "/metrics",  # Prometheus scrapes it: figures by queue and agent state, no caller
        "/console/{path}",
        "/api/v1/console/socket",  # the token comes in its first message (browsers send no
        "/api/v1/openapi.json",  # header on a WebSocket); without it: closed with 4401
        "/evaluate/{code}",  # the citizen's self-evaluation: the one-time code is the key (B-1)
    }
