"""Operational HTTP endpoints: liveness and readiness, live calls, the IVR journal.

``/healthz`` (liveness: the process answers) and ``/readyz`` (the database, Redis and ARI)
are public (load balancers ask them); live calls and the journal carry call ids, channels,
keys pressed and masked callers, so they are the office's only (rule Y-1) — behind the same
bearer tokens as the rest of the API. Caller numbers leave this process masked.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from aiohttp import web

from hotline.appkeys import AGI, CALENDAR_UNTIL, HEALTH, JOURNAL, LIVE, NODE, WRITER
from hotline.errors import DatabaseUnavailable, OutcomeUnknown
from hotline.privacy import mask_phone
from hotline.ticketing.actions import OFFICE
from hotline.web import API_PREFIXES, Handler, current_user, ok, query_int

UNGATED = ("/healthz", "/readyz", "/metrics")  # they answer without the database


async def healthz(request: web.Request) -> web.Response:
    agi = request.app[AGI]
    return web.json_response(
        {
            "status": "ok",
            "node": request.app[NODE],
            "agi": {
                "port": agi.port,
                "active": agi.active,
                "refused": agi.refused,
                "refusals": dict(agi.refusals),  # busy, peer, secret
            },
            "calendar_until": request.app[CALENDAR_UNTIL],
        }
    )


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database, Redis and ARI as last probed (every second), and what waits
    for them; 503 while any of them is down."""
    health = request.app[HEALTH]
    ready = health.ready()
    body = {
        "status": "ready" if ready else "not_ready",
        "node": request.app[NODE],
        "checks": health.status(),
        "journal_spooled": request.app[WRITER].pending(),
    }
    return web.json_response(body, status=200 if ready else 503)


@web.middleware
async def database_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """While the database is known to be down, API requests get their 503 at once; a request
    in flight when the watch finds it down (frozen, say) ends then, not at its own time-out —
    a write among them says its outcome is unknown (it may have been committed)."""
    path = request.path
    if not path.startswith(API_PREFIXES) or path.startswith(UNGATED):
        return await handler(request)
    health = request.app[HEALTH]
    if health.down("database"):
        raise DatabaseUnavailable("the database is down; try again shortly")
    work = asyncio.ensure_future(handler(request))
    down = asyncio.ensure_future(health.went_down("database").wait())
    try:
        await asyncio.wait({work, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        down.cancel()
    if work.done():
        return work.result()
    # not awaited: cancelling a query on a frozen server waits on that server
    work.cancel()
    work.add_done_callback(_retrieve)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        raise DatabaseUnavailable("the database stopped answering; try again shortly")
    raise OutcomeUnknown(
        "the database stopped answering during the request: the change may or may not be stored"
    )


def _retrieve(task: asyncio.Future[web.StreamResponse]) -> None:
    if not task.cancelled():
        task.exception()  # the answer was given already: its late error is not news


async def live_calls(request: web.Request) -> web.Response:
    await current_user(request, OFFICE)
    calls = await request.app[LIVE].list()
    return ok({"calls": [asdict(c) for c in calls]})


async def ivr_calls(request: web.Request) -> web.Response:
    await current_user(request, OFFICE)
    limit = query_int(request, "limit", 50, 500, least=1)
    rows = await request.app[JOURNAL].recent(limit)
    out = []
    for r in rows:
        item = asdict(r)
        item.pop("observer", None)
        item["caller"] = mask_phone(r.caller)
        item["started_at"] = r.started_at.isoformat()
        item["ended_at"] = r.ended_at.isoformat() if r.ended_at else None
        out.append(item)
    return ok({"calls": out})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.middlewares.append(database_gate)  # inside json_errors: its 503 is a JSON error
    app.router.add_get("/api/v1/calls/live", live_calls)
    app.router.add_get("/api/v1/ivr/calls", ivr_calls)
