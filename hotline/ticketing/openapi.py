"""The OpenAPI 3.1 document of the ticketing API, generated from the action table.

``hotline api openapi --write`` refreshes ``openapi.json`` next to this module (the file the
server serves); a test fails when the file and the table disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hotline.ticketing.actions import ACTIONS, OFFICE, REGISTER_FIELDS, REGISTER_ROLES, TEXT, Field
from hotline.ticketing.model import TicketState

FILE = Path(__file__).with_name("openapi.json")
ERROR = {"$ref": "#/components/responses/Error"}


def _body(fields: dict[str, Field], *, version: bool) -> dict[str, Any]:
    props = {name: f.schema() for name, f in fields.items()}
    required = [name for name, f in fields.items() if f.required]
    if version:
        props["version"] = {
            "type": "integer",
            "minimum": 0,
            "maximum": 2**31 - 1,
            "description": "the ticket version acted on",
        }
        required.insert(0, "version")
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, **_json(schema)}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): ERROR for c in codes}


def _html(*codes: int) -> dict[str, Any]:
    page = {"description": "a page", "content": {"text/html": {"schema": {"type": "string"}}}}
    return {str(c): page for c in codes}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": PATH_TEXT}


TICKET = {"$ref": "#/components/schemas/Ticket"}
PATH_TEXT = {"type": "string", "minLength": 1, "maxLength": 64, **TEXT}
REF = {
    "name": "ref",
    "in": "path",
    "required": True,
    "schema": PATH_TEXT,
    "description": "the ticket's id or number",
}
OBJECT = {"type": "object"}
OFFICE_ROLES = "roles: " + ", ".join(sorted(r.value for r in OFFICE))


def _query(name: str, schema: dict[str, Any], doc: str = "") -> dict[str, Any]:
    out = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**out, "description": doc} if doc else out


def _count(least: int, top: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": least, "maximum": top}


def _text(max_len: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_len, **TEXT}


AGENT = {
    "name": "agent",
    "in": "path",
    "required": True,
    "schema": PATH_TEXT,
    "description": "the agent's user id (a supervisor acts on any agent)",
}
NO_BODY = {"type": "object", "additionalProperties": False, "properties": {}}
AFTER_CALL = {"type": "boolean", "description": "after the call in progress ends"}
AGENT_ACTIONS = {
    "ready": ("is ready for calls", NO_BODY),
    "pause": (
        "pauses with a reason",
        {
            "type": "object",
            "required": ["reason"],
            "additionalProperties": False,
            "properties": {
                "reason": {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"},
                "after_call": AFTER_CALL,
            },
        },
    ),
    "unpause": ("is back from a pause", NO_BODY),
    "wrap-up/end": ("ends the wrap-up early", NO_BODY),
    "logout": (
        "stops taking calls",
        {"type": "object", "additionalProperties": False, "properties": {"after_call": AFTER_CALL}},
    ),
}


def _agent_actions() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for who, params in (("me", []), ("{agent}", [AGENT])):
        for action, (summary, body) in AGENT_ACTIONS.items():
            out[f"/api/v1/agents/{who}/{action}"] = {
                "post": {
                    "summary": f"The agent {summary}" + (" (a supervisor's act)" if params else ""),
                    "parameters": params,
                    "requestBody": {"required": "required" in body, **_json(body)},
                    "responses": {
                        "200": _ok("the agent's state", {"type": "object"}),
                        **_errors(400, 401, 403, 409),
                    },
                }
            }
    return out


CALL = {
    "name": "call",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
    "description": "the call id (the caller's channel id, as the pop gives it)",
}
CALL_CONTROLS = {
    "hold": ("puts the caller on hold (a holding bridge with music on hold)", None),
    "unhold": ("takes the caller off hold, back in the talk bridge", None),
    "hang-up": ("ends the agent's answered call", None),
    "utility": (
        "puts the caller through to the utility's duty line on a three-way call (H-6): the "
        "caller on hold while the directory's numbers ring in order; the outcome comes over "
        "the console socket (utility)",
        {
            "type": "object",
            "required": ["utility"],
            "properties": {
                "utility": {"enum": ["water", "power", "gas"]},
                "ticket": {"type": "string", "pattern": "^[0-9A-Za-z-]{1,32}$"},
            },
            "additionalProperties": False,
        },
    ),
    "transfer": (
        "transfers the caller blind: to another agent (by extension), the queue or the operator",
        {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["to", "extension"],
                    "properties": {
                        "to": {"const": "agent"},
                        "extension": {"type": "string", "pattern": "^[0-9]{3,8}$"},
                    },
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "required": ["to"],
                    "properties": {"to": {"enum": ["queue", "operator"]}},
                    "additionalProperties": False,
                },
            ]
        },
    ),
}


def _call_controls() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, (summary, body) in CALL_CONTROLS.items():
        op: dict[str, Any] = {
            "summary": f"The agent {summary} (as the console socket's command; "
            "hotline/softphone_bridge/PROTOCOL.md)",
            "parameters": [CALL],
            "responses": {
                "200": _ok("the agent's state", {"type": "object"}),
                **_errors(400, 401, 403, 409, 503),
            },
        }
        if body is not None:
            op["requestBody"] = {"required": True, **_json(body)}
        out[f"/api/v1/agents/me/calls/{{call}}/{path}"] = {"post": op}
    return out


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/v1/tickets": {
            "post": {
                "summary": "Register a ticket (I-1, I-2); the same upstream id returns the "
                "ticket it made (200) instead of a new one (201)",
                "description": "roles: " + ", ".join(sorted(r.value for r in REGISTER_ROLES)),
                "requestBody": {"required": True, **_json(_body(REGISTER_FIELDS, version=False))},
                "responses": {
                    "201": _ok("created", TICKET),
                    "200": _ok("already there", TICKET),
                    **_errors(400, 401, 403, 409),
                },
            },
            "get": {
                "summary": "Tickets the caller may see (a unit: its own assignments)",
                "parameters": [
                    _query("state", {"type": "string", "enum": [s.value for s in TicketState]}),
                    _query("phone", _text(32), "the office only (Y-1)"),
                    _query("limit", _count(1, 500)),
                    _query("offset", _count(0, 10**9)),
                ],
                "responses": {
                    "200": _ok(
                        "summaries",
                        {
                            "type": "object",
                            "properties": {
                                "tickets": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Summary"},
                                }
                            },
                        },
                    ),
                    **_errors(400, 401, 403),
                },
            },
        },
        "/api/v1/tickets/{ref}": {
            "get": {
                "summary": "One ticket; identity in clear for the office (logged), masked for "
                "units (Y-1)",
                "parameters": [REF],
                "responses": {"200": _ok("the ticket", TICKET), **_errors(401, 404)},
            }
        },
        "/api/v1/tickets/{ref}/events": {
            "get": {
                "summary": "The ticket's events: actor, role, time, action, rule, before/after",
                "parameters": [REF],
                "responses": {"200": _ok("events", {"type": "object"}), **_errors(401, 404)},
            }
        },
        "/api/v1/tickets/{ref}/identity": {
            "post": {
                "summary": "The citizen's identity in clear, with a reason; logged (Y-1)",
                "parameters": [REF],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["why"],
                            "additionalProperties": False,
                            "properties": {
                                "why": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": 500,
                                    "pattern": "^[^\\u0000]*\\S[^\\u0000]*$",
                                }
                            },
                        }
                    ),
                },
                "responses": {
                    "200": _ok("identity", {"type": "object"}),
                    **_errors(400, 401, 403, 404),
                },
            }
        },
        "/api/v1/tasks": {
            "get": {
                "summary": "The office's open tasks (call back a voice message); ?all=1 for done",
                "parameters": [_query("all", {"type": "string", "enum": ["0", "1", "true"]})],
                "responses": {"200": _ok("tasks", {"type": "object"}), **_errors(401, 403)},
            }
        },
        "/api/v1/tasks/{task}/done": {
            "post": {
                "summary": "Mark a task done, with a note",
                "parameters": [
                    {"name": "task", "in": "path", "required": True, "schema": _count(1, 2**31 - 1)}
                ],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "properties": {"note": _text(500)},
                            "additionalProperties": False,
                        }
                    ),
                },
                "responses": {
                    "200": _ok("done", {"type": "object"}),
                    **_errors(400, 401, 403, 404),
                },
            }
        },
        "/api/v1/tickets/{ref}/recordings/{name}": {
            "get": {
                "summary": "A ticket's voice message (WAV): the office's only, on record (Y-1)",
                "parameters": [
                    REF,
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,120}$"},
                    },
                ],
                "responses": {
                    "200": {"description": "the recording", "content": {"audio/wav": {}}},
                    **_errors(401, 403, 404),
                },
            }
        },
        "/api/v1/agents": {
            "get": {
                "summary": "Agents on duty: extension, state, time in state (the office's)",
                "responses": {"200": _ok("agents", {"type": "object"}), **_errors(401, 403)},
            }
        },
        "/api/v1/queue": {
            "get": {
                "summary": "The queue now: waiting calls (wait, priority), agents by state",
                "responses": {"200": _ok("the queue", {"type": "object"}), **_errors(401, 403)},
            }
        },
        "/api/v1/agents/me/login": {
            "post": {
                "summary": "An agent starts taking calls at an extension, with its skills",
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["extension"],
                            "additionalProperties": False,
                            "properties": {
                                "extension": {"type": "string", "pattern": "^[0-9]{3,8}$"},
                                "skills": {
                                    "type": "object",
                                    "maxProperties": 50,
                                    "propertyNames": {"pattern": "^[a-z]+:[a-z0-9_-]{1,32}$"},
                                    "additionalProperties": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": 5,
                                    },
                                    "description": "skill -> proficiency, e.g. utility:water",
                                },
                            },
                        }
                    ),
                },
                "responses": {
                    "200": _ok("logged in", {"type": "object"}),
                    **_errors(400, 401, 403, 409),
                },
            }
        },
        **_agent_actions(),
        **_call_controls(),
        "/api/v1/me": {
            "get": {
                "summary": "Who the token belongs to",
                "responses": {"200": _ok("user", {"type": "object"}), **_errors(401)},
            }
        },
        "/api/v1/calls/live": {
            "get": {
                "summary": "Calls in the IVR now, on every node (callers masked, Y-1)",
                "description": OFFICE_ROLES,
                "responses": {"200": _ok("calls", OBJECT), **_errors(401, 403)},
            }
        },
        "/api/v1/ivr/calls": {
            "get": {
                "summary": "The IVR's journal, newest first: keys, route, steps (callers masked)",
                "description": OFFICE_ROLES,
                "parameters": [_query("limit", _count(1, 500))],
                "responses": {"200": _ok("calls", OBJECT), **_errors(400, 401, 403)},
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _ok("the OpenAPI document", OBJECT)},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: node, FastAGI counters, the last day the calendar knows",
                "security": [],
                "responses": {"200": _ok("health", OBJECT)},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the database, Redis and ARI as last probed, each with "
                "ok and, when down, the error and for how long; 503 while one is down",
                "security": [],
                "responses": {
                    "200": _ok("ready", OBJECT),
                    "503": _ok("not ready: the checks say which part is down", OBJECT),
                },
            }
        },
        "/api/v1/notifications": {
            "get": {
                "summary": "The caller's notifications from the SLA watch, newest first: "
                "reminders before deadlines, overdue marks, the emergency plan's alerts, S-6 "
                "notices (never naming a citizen, Y-1)",
                "parameters": [
                    _query("unread", {"type": "string", "enum": ["0", "1", "true", "false"]}),
                    _query("limit", _count(1, 500)),
                    _query("before", _count(1, 2**31 - 1), "ids below this one (paging)"),
                ],
                "responses": {"200": _ok("notifications", {"type": "object"}), **_errors(400, 401)},
            }
        },
        "/api/v1/notifications/{id}/read": {
            "post": {
                "summary": "Mark one of the caller's own notifications read",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,10}$"},
                    }
                ],
                "responses": {"200": _ok("read", {"type": "object"}), **_errors(401, 404)},
            }
        },
        "/api/v1/violations": {
            "get": {
                "summary": "Missed deadlines on record (S-5), against a unit and its handler or "
                "the office; a unit sees its own",
                "parameters": [
                    _query("unit", _text(64)),
                    _query("handler", _text(64), "a user id"),
                    _query("month", {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}),
                    _query("limit", _count(1, 1000)),
                ],
                "responses": {
                    "200": _ok("violations", {"type": "object"}),
                    **_errors(400, 401, 403),
                },
            }
        },
        "/api/v1/utilities": {
            "get": {
                "summary": "The utility duty directory (H-6): each utility's unit, categories and "
                "duty numbers in the order they are rung, with those on duty now; the office's",
                "responses": {"200": _ok("utilities", {"type": "object"}), **_errors(401, 403)},
            }
        },
        "/api/v1/callbacks/figures": {
            "get": {
                "summary": "Satisfaction callbacks (B-1): reach rate, satisfaction rate "
                "((satisfied + basically satisfied) / evaluated), attempts per completed survey; "
                "in all, per unit, per month and per unit and month; the office's",
                "responses": {"200": _ok("all", {"type": "object"}), **_errors(401, 403)},
            }
        },
        "/api/v1/tickets/{ref}/callbacks": {
            "get": {
                "summary": "A ticket's callback campaigns (B-1): mode, state, deadline, the "
                "next call, every attempt's outcome, the result; the office's",
                "parameters": [_path("ref")],
                "responses": {
                    "200": _ok("callbacks", {"type": "array"}),
                    **_errors(401, 403, 404),
                },
            }
        },
        "/evaluate/{code}": {
            "get": {
                "summary": "The citizen's self-evaluation page (B-1), Chinese, for a phone: the "
                "ticket's number and the three answers; 404 unknown, 410 used or expired",
                "security": [],
                "parameters": [_path("code")],
                "responses": _html(200, 404, 410),
            },
            "post": {
                "summary": "The citizen's evaluation (form: result = satisfied | "
                "basically_satisfied | unsatisfied, reason); a code works once, until the "
                "callback's deadline",
                "security": [],
                "parameters": [_path("code")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["result"],
                                "properties": {
                                    "result": {
                                        "type": "string",
                                        "enum": [
                                            "satisfied",
                                            "basically_satisfied",
                                            "unsatisfied",
                                        ],
                                    },
                                    "reason": {"type": "string", "maxLength": 500},
                                },
                            }
                        }
                    },
                },
                "responses": _html(200, 400, 404, 410),
            },
        },
        "/metrics": {
            "get": {
                "summary": "The queue's figures in Prometheus text format: offered, answered, "
                "abandoned, service level (15 s), answer times, waits, agents by state; the "
                "satisfaction callbacks' reach and satisfaction rates, by unit",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/v1/console/socket": {
            "get": {
                "summary": "The agent console's WebSocket: agent states and screen pops pushed, "
                "numbered per agent and resumable; agent commands (hotline/softphone_bridge/"
                "PROTOCOL.md). The token comes in the first message, hello, not in a header",
                "security": [],
                "responses": {
                    "101": {"description": "switching to the WebSocket protocol"},
                    "400": {"description": "not a WebSocket upgrade"},
                },
            }
        },
        "/console/{path}": {
            "get": {
                "summary": "The agent console and supervisor view (a Vue app built into web/dist "
                "by scripts/setup; 503 with a note when it is not built)",
                "security": [],
                "parameters": [
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the page or one of its files"},
                    "404": {"description": "no such file of the console"},
                    "503": {
                        "description": "the console is not built",
                        "content": {"text/html": {}},
                    },
                },
            }
        },
        "/public/tickets": {
            "get": {
                "summary": "Published closed tickets, without identity (P-1, P-2)",
                "security": [],
                "parameters": [_query("limit", _count(1, 200)), _query("offset", _count(0, 10**9))],
                "responses": {"200": _ok("tickets", {"type": "object"}), **_errors(400)},
            }
        },
        "/public/tickets/{number}": {
            "get": {
                "summary": "One published ticket, without identity (P-1, P-2)",
                "security": [],
                "parameters": [
                    {"name": "number", "in": "path", "required": True, "schema": PATH_TEXT}
                ],
                "responses": {"200": _ok("ticket", {"type": "object"}), **_errors(404)},
            }
        },
        "/open311/v2/requests.json": {
            "get": {
                "summary": "Open311 GeoReport v2 service requests (read side)",
                "security": [],
                "parameters": [
                    _query("status", {"type": "string", "enum": ["open", "closed"]}),
                    _query("page", _count(1, 10**6)),
                    _query("page_size", _count(1, 200)),
                ],
                "responses": {
                    "200": _ok(
                        "requests",
                        {"type": "array", "items": {"$ref": "#/components/schemas/Open311Request"}},
                    ),
                    **_errors(400),
                },
            }
        },
    }
    for name, action in ACTIONS.items():
        paths[f"/api/v1/tickets/{{ref}}/actions/{name}"] = {
            "post": {
                "summary": f"{action.summary}",
                "description": f"rule {action.rule}; roles: "
                + ", ".join(sorted(r.value for r in action.roles)),
                "parameters": [REF],
                "requestBody": {
                    "required": True,
                    **_json(_body(dict(action.fields), version=True)),
                },
                "responses": {
                    "200": _ok("the changed ticket", TICKET),
                    **_errors(400, 401, 403, 404, 409, 428),
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hotline API",
            "version": "1",
            "description": "Tickets of the 12345 hotline under the rule book (RULES.md). "
            'Errors: {"error": {"code", "message", "rule"}}. Every operation with a bearer '
            "token may also answer 429 too_many_requests (with Retry-After) to a source that "
            "failed authentication too often. Any operation may answer 503 (with Retry-After) "
            "when a part it needs is down: database_unavailable, shared_state_unavailable, or "
            "outcome_unknown — the commit was sent and its answer lost, so the change may be "
            "stored: repeat an intake with the same upstream_id (idempotent) or read first.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "an error with a machine-readable code",
                    **_json({"$ref": "#/components/schemas/Error"}),
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "rule"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "rule": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
                "Ticket": {
                    "type": "object",
                    "required": ["id", "number", "version", "state"],
                    "properties": {
                        "id": {"type": "string"},
                        "number": {"type": "string"},
                        "version": {"type": "integer"},
                        "state": {"type": "string"},
                        "assignments": {"type": "array"},
                        "citizen": {"type": "object"},
                    },
                },
                "Summary": {
                    "type": "object",
                    "required": ["id", "number", "state", "type", "registered_at"],
                    "properties": {
                        **{
                            k: {"type": "string"}
                            for k in ("id", "number", "state", "type", "registered_at")
                        },
                        "lead_unit": {"type": ["string", "null"]},
                        "handle_due": {"type": ["string", "null"]},
                    },
                },
                "Open311Request": {
                    "type": "object",
                    "properties": {
                        k: {"type": ["string", "null"]}
                        for k in (
                            "service_request_id",
                            "status",
                            "status_notes",
                            "service_name",
                            "service_code",
                            "description",
                            "agency_responsible",
                            "requested_datetime",
                            "updated_datetime",
                            "expected_datetime",
                            "address",
                        )
                    },
                },
            },
        },
    }


def render() -> str:
    return json.dumps(document(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
