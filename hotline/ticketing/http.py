"""The ticketing HTTP API (aiohttp), the public read side and Open311 GeoReport v2.

Handlers only translate: request -> service call -> JSON. Errors are always
``{"error": {"code", "message", "rule"}}`` with a 4xx status for anything a client can cause:
a rule the aggregate refuses (409, with the rule id), a bad payload (400), a missing or stale
version (428 / 409), an unknown id (404), a role or unit that may not (403), no token (401).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.appkeys import RECORDINGS
from hotline.ticketing import codec
from hotline.ticketing.actions import OFFICE, PayloadError
from hotline.ticketing.calendar import CalendarError
from hotline.ticketing.model import TicketError, TicketState
from hotline.ticketing.repository import NotFound, StaleTicket, UnitOfWork
from hotline.ticketing.service import Forbidden, TicketService, VersionRequired
from hotline.ticketing.tables import tickets
from hotline.ticketing.ticket import Ticket
from hotline.ticketing.users import User, authenticate, unit_names
from hotline.ticketing.views import (
    open311_listed,
    open311_view,
    public_view,
    publishable,
    summary_view,
    ticket_view,
)

log = logging.getLogger(__name__)

SERVICE = web.AppKey("ticket_service", TicketService)
TICKETS_ENGINE = web.AppKey("ticket_engine", AsyncEngine)
USER = "hotline.user"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, code: str, message: str, rule: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "rule": rule}},
        status=status,
        dumps=_dumps,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def ok(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


def _calendar_error(exc: CalendarError) -> web.Response:
    log.error("working calendar: %s", exc)
    return error(503, "calendar_unavailable", str(exc), "C-2")


# Exceptions a client can cause, and the JSON error each becomes.
CLIENT_ERRORS: dict[type[Exception], Callable[[Any], web.Response]] = {
    TicketError: lambda e: error(409, e.code, e.message, e.rule),
    PayloadError: lambda e: error(400, "bad_payload", str(e)),
    Forbidden: lambda e: error(403, e.code, str(e), e.rule),
    NotFound: lambda e: error(404, "not_found", f"no {e}"),
    StaleTicket: lambda e: error(409, "stale_version", str(e)),
    VersionRequired: lambda e: error(428, "version_required", str(e)),
    # a value the database cannot store; the driver's text (with the values) is not echoed
    DataError: lambda e: error(400, "bad_payload", "a value does not fit its field"),
    CalendarError: _calendar_error,
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(("/api/v1/", "/public/", "/open311/")):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception as exc:
        for kind in type(exc).__mro__:
            if kind in CLIENT_ERRORS:
                return CLIENT_ERRORS[kind](exc)
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error(500, "internal", "unexpected error (logged)")


async def _user(request: web.Request) -> User:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _Unauthorized("send Authorization: Bearer <token>")
    token = token.strip()
    cached = _TOKENS.get(token)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    user = await authenticate(request.app[TICKETS_ENGINE], token)
    if user is None:
        raise _Unauthorized("unknown token")
    if len(_TOKENS) > 10_000:
        _TOKENS.clear()
    _TOKENS[token] = (user, time.monotonic() + TOKEN_TTL)
    return user


TOKEN_TTL = 30.0  # seconds a checked token is trusted without asking the database again
_TOKENS: dict[str, tuple[User, float]] = {}


class _Unauthorized(web.HTTPUnauthorized):
    def __init__(self, message: str) -> None:
        super().__init__(
            text=_dumps({"error": {"code": "unauthorized", "message": message, "rule": None}}),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="hotline"'},
        )


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PayloadError("body", "is not JSON") from None
    except RecursionError:
        raise PayloadError("body", "is nested too deeply") from None
    if not isinstance(body, dict):
        raise PayloadError("body", "must be a JSON object")
    return body


def _int(request: web.Request, name: str, default: int, top: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdecimal():
        raise PayloadError(name, "must be a non-negative integer")
    return min(int(raw), top)


# -- office and units -------------------------------------------------------------------------
async def register(request: web.Request) -> web.Response:
    user = await _user(request)
    service = request.app[SERVICE]
    result = await service.register(user.actor, await _json(request))
    # the identity the agent just typed; a re-delivered ticket's is not shown again (Y-1)
    view = ticket_view(result.ticket, masked=not result.created)
    view["suggested_units"] = service.suggested_units(result.ticket)  # rule D-2
    return ok(view, status=201 if result.created else 200)


async def list_tickets(request: web.Request) -> web.Response:
    user = await _user(request)
    found = await request.app[SERVICE].search(
        user.actor,
        state=request.query.get("state") or None,
        phone=request.query.get("phone") or None,
        limit=_int(request, "limit", 50, 500),
        offset=_int(request, "offset", 0, 10**9),
    )
    return ok({"tickets": [summary_view(s) for s in found]})


async def get_ticket(request: web.Request) -> web.Response:
    user = await _user(request)
    service = request.app[SERVICE]
    ticket = await service.get(user.actor, request.match_info["ref"])
    view = _view_for(user, ticket)
    view["suggested_units"] = service.suggested_units(ticket)  # rule D-2
    return ok(view)


def _view_for(user: User, ticket: Ticket) -> dict[str, Any]:
    """The office's view in clear; a unit's masked and limited to its own assignments."""
    if user.actor.role in OFFICE:
        return ticket_view(ticket, masked=False)
    return ticket_view(ticket, masked=True, unit=user.actor.unit_id)


async def ticket_events(request: web.Request) -> web.Response:
    user = await _user(request)
    events = await request.app[SERVICE].events(user.actor, request.match_info["ref"])
    return ok({"events": [codec.to_json(e) for e in events]})


async def act(request: web.Request) -> web.Response:
    user = await _user(request)
    ticket = await request.app[SERVICE].act(
        user.actor,
        request.match_info["ref"],
        request.match_info["action"],
        await _json(request),
    )
    # identity in clear only where each look is logged: GET (office) and /identity (Y-1)
    view = ticket_view(ticket, masked=True, unit=user.actor.unit_id)
    return ok(view)


async def identity(request: web.Request) -> web.Response:
    user = await _user(request)
    body = await _json(request)
    why = body.get("why")
    if not isinstance(why, str):
        raise PayloadError("why", "is required: say why (it is logged)")
    citizen = await request.app[SERVICE].identity(
        user.actor, request.match_info["ref"], why, user.may_unmask
    )
    return ok({"name": citizen.name, "phone": citizen.phone, "id_number": citizen.id_number})


async def list_tasks(request: web.Request) -> web.Response:
    user = await _user(request)
    open_only = request.query.get("all") not in ("1", "true")
    return ok({"tasks": await request.app[SERVICE].tasks(user.actor, open_only)})


async def task_done(request: web.Request) -> web.Response:
    user = await _user(request)
    raw = request.match_info["task"]
    if not raw.isdecimal():
        raise NotFound(f"task {raw}")
    note = (await _json(request)).get("note", "")
    if not isinstance(note, str):
        raise PayloadError("note", "must be a string")
    await request.app[SERVICE].complete_task(user.actor, int(raw), note)
    return ok({"task": int(raw), "done": True})


async def recording(request: web.Request) -> web.StreamResponse:
    """A ticket's voice message as the office hears it (WAV), once fetched from the switch."""
    user = await _user(request)
    ref, name = request.match_info["ref"], request.match_info["name"]
    try:
        path = request.app[RECORDINGS].path(name)
    except ValueError:
        raise NotFound(f"recording {name}") from None
    await request.app[SERVICE].recording_access(user.actor, ref, name, path.is_file)
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


async def me(request: web.Request) -> web.Response:
    user = await _user(request)
    return ok(
        {
            "id": user.actor.user_id,
            "name": user.name,
            "role": user.actor.role.value,
            "unit": user.actor.unit_id,
            "may_unmask": user.may_unmask,
        }
    )


async def openapi(request: web.Request) -> web.Response:
    text = resources.files("hotline.ticketing").joinpath("openapi.json").read_text("utf-8")
    return web.Response(text=text, content_type="application/json")


# -- public read side (P-1, P-2) --------------------------------------------------------------
async def _public_tickets(
    request: web.Request, where: Sequence[sa.ColumnElement[bool]], limit: int, offset: int
) -> list[Any]:
    async with UnitOfWork(request.app[TICKETS_ENGINE]) as uow:
        return await uow.tickets.load_many(where=where, limit=limit, offset=offset)


async def public_list(request: web.Request) -> web.Response:
    limit, offset = _int(request, "limit", 50, 200), _int(request, "offset", 0, 10**9)
    found = await _public_tickets(
        request,
        [tickets.c.published.is_(True), tickets.c.state == TicketState.CLOSED.value],
        limit,
        offset,
    )
    names = await unit_names(request.app[TICKETS_ENGINE])
    return ok({"tickets": [public_view(t, names) for t in found if publishable(t)]})


async def public_one(request: web.Request) -> web.Response:
    found = await _public_tickets(request, [tickets.c.number == request.match_info["number"]], 1, 0)
    if not found or not publishable(found[0]):
        raise NotFound(f"published ticket {request.match_info['number']}")
    return ok(public_view(found[0], await unit_names(request.app[TICKETS_ENGINE])))


async def open311_requests(request: web.Request) -> web.Response:
    limit = _int(request, "page_size", 50, 200)
    offset = (max(_int(request, "page", 1, 10**6), 1) - 1) * limit
    where: list[sa.ColumnElement[bool]] = [
        tickets.c.state.notin_([TicketState.REJECTED.value, TicketState.INTERNAL.value])
    ]
    status = request.query.get("status")
    if status == "closed":
        where.append(tickets.c.state == TicketState.CLOSED.value)
    elif status == "open":
        where.append(tickets.c.state != TicketState.CLOSED.value)
    elif status:
        raise PayloadError("status", "is open or closed")
    found = await _public_tickets(request, where, limit, offset)
    names = await unit_names(request.app[TICKETS_ENGINE])
    return ok([open311_view(t, names) for t in found if open311_listed(t)])


def setup(app: web.Application) -> None:
    """Routes and error middleware; the composition root sets SERVICE and TICKETS_ENGINE."""
    app.middlewares.append(json_errors)
    r = app.router
    r.add_post("/api/v1/tickets", register)
    r.add_get("/api/v1/tickets", list_tickets)
    r.add_get("/api/v1/tickets/{ref}", get_ticket)
    r.add_get("/api/v1/tickets/{ref}/events", ticket_events)
    r.add_post("/api/v1/tickets/{ref}/actions/{action}", act)
    r.add_post("/api/v1/tickets/{ref}/identity", identity)
    r.add_get("/api/v1/me", me)
    r.add_get("/api/v1/tasks", list_tasks)
    r.add_post("/api/v1/tasks/{task}/done", task_done)
    r.add_get("/api/v1/tickets/{ref}/recordings/{name}", recording)
    r.add_get("/api/v1/openapi.json", openapi)
    r.add_get("/public/tickets", public_list)
    r.add_get("/public/tickets/{number}", public_one)
    r.add_get("/open311/v2/requests.json", open311_requests)
