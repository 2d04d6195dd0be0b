"""Agents log in and out (until the queue issue brings full agent states)."""

from __future__ import annotations

import re

from aiohttp import web

from hotline.appkeys import PRESENCE
from hotline.errors import Forbidden, PayloadError
from hotline.ticketing.model import Role
from hotline.web import current_user, json_body, ok

EXTENSION = re.compile(r"[0-9]{3,8}")  # ASCII digits: \d takes ٣ and ３ too


async def login(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.actor.role is not Role.AGENT:
        raise Forbidden("role_forbidden", "only agents take calls")
    extension = (await json_body(request)).get("extension")
    if not isinstance(extension, str) or not EXTENSION.fullmatch(extension):
        raise PayloadError("extension", "is the agent phone's extension, e.g. 8001")
    await request.app[PRESENCE].login(user.actor.user_id, extension)
    return ok({"agent": user.actor.user_id, "extension": extension, "logged_in": True})


async def logout(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[PRESENCE].logout(user.actor.user_id)
    return ok({"agent": user.actor.user_id, "logged_in": False})


async def agents(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.actor.role in (Role.UNIT_HANDLER, Role.UNIT_LEADER, Role.ADMIN):
        raise Forbidden("role_forbidden", "the office's agents are the office's business")
    present = await request.app[PRESENCE].agents()
    return ok({"agents": [{"agent": a, "extension": e} for a, e in sorted(present.items())]})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/agents/me/login", login)
    app.router.add_post("/api/v1/agents/me/logout", logout)
    app.router.add_get("/api/v1/agents", agents)
