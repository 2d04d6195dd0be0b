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
