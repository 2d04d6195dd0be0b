"""Operational HTTP endpoints: health, live calls, the IVR journal, the console placeholder.

The ticketing API (issue 3) and the agent console (softphone bridge) mount here later. Caller
numbers leave this process masked (rule Y-1).
"""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from hotline.appkeys import AGI, CALENDAR_UNTIL, JOURNAL, LIVE, NODE
from hotline.privacy import mask_phone

CONSOLE_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>12345 坐席台</title></head>
<body><h1>12345 坐席台 · Agent console</h1>
<p>The agent console arrives with the softphone bridge. Until then this backend answers
<a href="/healthz">/healthz</a>, <a href="/api/v1/calls/live">/api/v1/calls/live</a> and
<a href="/api/v1/ivr/calls">/api/v1/ivr/calls</a>.</p></body></html>
"""


async def healthz(request: web.Request) -> web.Response:
    agi = request.app[AGI]
    return web.json_response(
        {
            "status": "ok",
            "node": request.app[NODE],
            "agi": {"port": agi.port, "active": agi.active, "refused": agi.refused},
            "calendar_until": request.app[CALENDAR_UNTIL],
        }
    )


async def live_calls(request: web.Request) -> web.Response:
    calls = await request.app[LIVE].list()
    return web.json_response({"calls": [asdict(c) for c in calls]})


async def ivr_calls(request: web.Request) -> web.Response:
    try:
        limit = max(1, min(500, int(request.query.get("limit", "50"))))
    except ValueError:
        return web.json_response(
            {"error": {"code": "bad_limit", "message": "limit must be an integer", "rule": None}},
            status=400,
        )
    rows = await request.app[JOURNAL].recent(limit)
    out = []
    for r in rows:
        item = asdict(r)
        item["caller"] = mask_phone(r.caller)
        item["started_at"] = r.started_at.isoformat()
        item["ended_at"] = r.ended_at.isoformat() if r.ended_at else None
        out.append(item)
    return web.json_response({"calls": out})


async def console(request: web.Request) -> web.Response:
    return web.Response(text=CONSOLE_PAGE, content_type="text/html")


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/calls/live", live_calls)
    app.router.add_get("/api/v1/ivr/calls", ivr_calls)
    app.router.add_get("/console/", console)
