"""The ticketing HTTP API (aiohttp), the public read side and Open311 GeoReport v2.

Handlers only translate: request -> service call -> JSON; authentication, bodies, query
numbers and the error mapping are :mod:`hotline.web`'s. Errors are always
``{"error": {"code", "message", "rule"}}`` with a 4xx status for anything a client can cause:
a rule the aggregate refuses (409, with the rule id), a bad payload (400), a missing or stale
version (428 / 409), an unknown id (404), a role or unit that may not (403), no token (401).
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.appkeys import RECORDINGS
from hotline.errors import Forbidden, NotFound, PayloadError
from hotline.ticketing import codec, notices
from hotline.ticketing.actions import OFFICE
from hotline.ticketing.repository import UnitOfWork
from hotline.ticketing.service import TicketService
from hotline.ticketing.ticket import Ticket
from hotline.ticketing.users import User
from hotline.ticketing.views import (
    event_views,
    open311_listed,
    open311_view,
    public_view,
    publishable,
    summary_view,
    ticket_view,
)
from hotline.web import current_user as _user
from hotline.web import json_body as _json
from hotline.web import ok, query_int

log = logging.getLogger(__name__)

SERVICE = web.AppKey("ticket_service", TicketService)
TICKETS_ENGINE = web.AppKey("ticket_engine", AsyncEngine)
MAX_REF = 64  # a ticket id (36) or number (13); longer is no ticket


def _ref(request: web.Request, name: str = "ref") -> str:
    ref = request.match_info[name]
    if not ref or len(ref) > MAX_REF:
        raise NotFound(f"ticket {ref[:MAX_REF]}")
    return ref


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
        limit=query_int(request, "limit", 50, 500, least=1),
        offset=query_int(request, "offset", 0, 10**9),
    )
    return ok({"tickets": [summary_view(s) for s in found]})


async def get_ticket(request: web.Request) -> web.Response:
    user = await _user(request)
    service = request.app[SERVICE]
    ticket = await service.get(user.actor, _ref(request))
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
    ticket, events = await request.app[SERVICE].events(user.actor, _ref(request))
    masked = user.actor.role not in OFFICE  # a unit reads every event text scrubbed (Y-1)
    return ok({"events": event_views(events, ticket.citizen, masked)})


async def act(request: web.Request) -> web.Response:
    user = await _user(request)
    action = request.match_info["action"]
    ticket = await request.app[SERVICE].act(
        user.actor, _ref(request), action[:64], await _json(request)
    )
    # identity in clear only where each look is logged: GET (office) and /identity (Y-1)
    view = ticket_view(ticket, masked=True, unit=user.actor.unit_id)
    return ok(view)


async def identity(request: web.Request) -> web.Response:
    user = await _user(request)
    body = await _json(request)
    why = body.get("why")
    if not isinstance(why, str) or len(why) > 500:
        raise PayloadError("why", "is required: say why (it is logged), 500 characters at most")
    citizen = await request.app[SERVICE].identity(user.actor, _ref(request), why, user.may_unmask)
    return ok({"name": citizen.name, "phone": citizen.phone, "id_number": citizen.id_number})


async def list_tasks(request: web.Request) -> web.Response:
    user = await _user(request)
    open_only = request.query.get("all") not in ("1", "true")
    tasks = await request.app[SERVICE].tasks(user.actor, open_only)
    return ok({"tasks": [codec.to_json(t) for t in tasks]})


async def task_done(request: web.Request) -> web.Response:
    user = await _user(request)
    raw = request.match_info["task"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise NotFound(f"task {raw[:20]}")
    note = (await _json(request)).get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        raise PayloadError("note", "must be a string of 500 characters at most")
    await request.app[SERVICE].complete_task(user.actor, int(raw), note)
    return ok({"task": int(raw), "done": True})


async def recording(request: web.Request) -> web.StreamResponse:
    """A ticket's voice message as the office hears it (WAV), once fetched from the switch."""
    user = await _user(request)
    ref, name = _ref(request), request.match_info["name"]
    try:
        path = request.app[RECORDINGS].path(name)
    except ValueError:
        raise NotFound(f"recording {name[:120]}") from None
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


# -- what the SLA watch tells and counts (S-4 … S-6) ------------------------------------------
def _notice_view(n: notices.Notice) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "ticket": n.ticket_number,
        "text": n.text,
        "at": n.created_at.isoformat(),
        "read_at": n.read_at.isoformat() if n.read_at else None,
    }


async def list_notifications(request: web.Request) -> web.Response:
    """The caller's own notifications, newest first (``unread=1``: those not read yet)."""
    user = await _user(request)
    unread = request.query.get("unread") in ("1", "true")
    before = request.query.get("before")
    found = await notices.list_notices(
        request.app[TICKETS_ENGINE],
        user.actor.user_id,
        unread,
        query_int(request, "limit", 50, 500, least=1),
        query_int(request, "before", 0, 2**31 - 1, least=1) if before else None,
    )
    return ok({"notifications": [_notice_view(n) for n in found]})


async def notification_read(request: web.Request) -> web.Response:
    user = await _user(request)
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > 2**31 - 1:
        raise NotFound(f"notification {raw[:20]}")
    now = request.app[SERVICE].clock.now()
    if not await notices.mark_read(request.app[TICKETS_ENGINE], user.actor.user_id, int(raw), now):
        raise NotFound(f"notification {raw}")
    return ok({"id": int(raw), "read": True})


MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")  # ASCII digits: \d takes ٣ too


async def list_violations(request: web.Request) -> web.Response:
    """Rule S-5's records: the office sees all; a unit only its own."""
    user = await _user(request)
    actor = user.actor
    unit = request.query.get("unit") or None
    handler = request.query.get("handler") or None
    month = request.query.get("month") or None
    if month is not None and not MONTH.fullmatch(month):
        raise PayloadError("month", "is YYYY-MM")
    for name, value in (("unit", unit), ("handler", handler)):
        if value is not None and len(value) > 64:
            raise PayloadError(name, "is 64 characters at most")
    if actor.role.in_unit:
        if unit is not None and unit != actor.unit_id:
            raise Forbidden("role_forbidden", "a unit sees its own violations only", "S-5")
        unit = actor.unit_id
    elif actor.role not in OFFICE:
        raise Forbidden("role_forbidden", f"the {actor.role.value} role sees no violations")
    found = await notices.list_violations(
        request.app[TICKETS_ENGINE],
        unit=unit,
        handler=handler,
        month=month,
        limit=query_int(request, "limit", 200, 1000, least=1),
    )
    return ok({"violations": [codec.to_json(v) for v in found]})


async def openapi(request: web.Request) -> web.Response:
    text = resources.files("hotline.ticketing").joinpath("openapi.json").read_text("utf-8")
    return web.Response(text=text, content_type="application/json")


# -- public read side (P-1, P-2) --------------------------------------------------------------
async def public_list(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 50, 200, least=1)
    offset = query_int(request, "offset", 0, 10**9)
    async with UnitOfWork(request.app[TICKETS_ENGINE]) as uow:
        found = await uow.queries.published(limit, offset)
        names = await uow.queries.unit_names()
    return ok({"tickets": [public_view(t, names) for t in found if publishable(t)]})


async def public_one(request: web.Request) -> web.Response:
    number = _ref(request, "number")
    async with UnitOfWork(request.app[TICKETS_ENGINE]) as uow:
        found = await uow.queries.by_number(number)
        names = await uow.queries.unit_names()
    if found is None or not publishable(found):
        raise NotFound(f"published ticket {number}")
    return ok(public_view(found, names))


async def open311_requests(request: web.Request) -> web.Response:
    limit = query_int(request, "page_size", 50, 200, least=1)
    offset = (query_int(request, "page", 1, 10**6, least=1) - 1) * limit
    status = request.query.get("status") or None
    if status not in (None, "open", "closed"):
        raise PayloadError("status", "is open or closed")
    async with UnitOfWork(request.app[TICKETS_ENGINE]) as uow:
        found = await uow.queries.open311(status, limit, offset)
        names = await uow.queries.unit_names()
    return ok([open311_view(t, names) for t in found if open311_listed(t)])


def setup(app: web.Application) -> None:
    """Routes; the composition root sets SERVICE and TICKETS_ENGINE, :mod:`hotline.web` the
    authenticator and the error middleware."""
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
    r.add_get("/api/v1/notifications", list_notifications)
    r.add_post("/api/v1/notifications/{id}/read", notification_read)
    r.add_get("/api/v1/violations", list_violations)
    r.add_get("/public/tickets", public_list)
    r.add_get("/public/tickets/{number}", public_one)
    r.add_get("/open311/v2/requests.json", open311_requests)
