"""The agent API: agents log in at an extension and move through their states; the queue seen.

An agent acts on itself (``/api/v1/agents/me/…``); a supervisor acts on any agent
(``/api/v1/agents/{agent}/…``, log-in excepted: an agent logs in at its own desk). A state the
table does not allow is a 409 with the ACD's code (``not_ready``, ``on_a_call``, …). Log-ins are
also kept in the database, so a restart puts the agents on duty back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hotline.appkeys import PRESENCE, QUEUE
from hotline.errors import Forbidden, PayloadError
from hotline.queue.acd import Priority, Snapshot
from hotline.queue.metrics import CONTENT_TYPE
from hotline.queue.service import QueueService
from hotline.queue.views import agent_json, waiting_json
from hotline.ticketing.model import Role
from hotline.web import Handler, current_user, json_body, ok

MoreMetrics = Callable[[web.Application], Awaitable[bytes]]
MORE_METRICS: web.AppKey[list[MoreMetrics]] = web.AppKey("more_metrics", list)

EXTENSION = re.compile(r"[0-9]{3,8}")  # ASCII digits: \d takes ٣ and ３ too
SKILL = re.compile(r"[a-z]+:[a-z0-9_-]{1,32}")  # utility:water, type:help, lang:zh
REASON = re.compile(r"[a-z0-9_-]{1,32}")  # lunch, training, meeting, …
NOT_OFFICE = (Role.UNIT_HANDLER, Role.UNIT_LEADER, Role.ADMIN)


def _queue(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "waiting": waiting_json(snapshot),
        "agents": [agent_json(a, a.agent_id) for a in snapshot.agents],
        "handle_time": round(snapshot.handle_time, 1),
    }


async def _view(queue: QueueService, agent_id: str) -> dict[str, Any]:
    snapshot = await queue.snapshot()
    found = next((a for a in snapshot.agents if a.agent_id == agent_id), None)
    return agent_json(found, agent_id)


async def _body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    body = await json_body(request)
    extra = sorted(set(body) - allowed)
    if extra:
        raise PayloadError(extra[0], "is not a field of this request")
    return body


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise PayloadError(name, "is true or false")
    return value


async def login(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.actor.role is not Role.AGENT:
        raise Forbidden("role_forbidden", "only agents take calls")
    body = await _body(request, {"extension", "skills"})
    extension = body.get("extension")
    if not isinstance(extension, str) or not EXTENSION.fullmatch(extension):
        raise PayloadError("extension", "is the agent phone's extension, e.g. 8001")
    skills = body.get("skills", {})
    if not isinstance(skills, dict) or len(skills) > 50:
        raise PayloadError("skills", "is an object of skill -> proficiency 1..5")
    for name, level in skills.items():
        if not SKILL.fullmatch(name):
            raise PayloadError("skills", f"{name[:40]!r}: a skill is kind:name, e.g. utility:water")
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 5:
            raise PayloadError("skills", f"{name}: proficiency is an integer 1..5")
    agent_id = user.actor.user_id
    queue = request.app[QUEUE]
    await queue.login(agent_id, extension, skills)
    await request.app[PRESENCE].login(agent_id, extension, skills)
    return ok({**(await _view(queue, agent_id)), "logged_in": True})


async def _target(request: web.Request) -> str:
    """``me``: the agent itself; another id: a supervisor's act on that agent."""
    user = await current_user(request)
    who = request.match_info.get("agent", "me")
    if who == "me":
        if user.actor.role is not Role.AGENT:
            raise Forbidden("role_forbidden", "only agents take calls")
        return user.actor.user_id
    if user.actor.role is not Role.SUPERVISOR and who != user.actor.user_id:
        raise Forbidden("role_forbidden", "only a supervisor acts on another agent")
    return who


def _plain(command: Callable[[QueueService, str], Awaitable[object]]) -> Handler:
    """A command with no body: ready, unpause, end wrap-up."""

    async def handle(request: web.Request) -> web.Response:
        agent_id = await _target(request)
        await _body(request, set())
        await command(request.app[QUEUE], agent_id)
        return ok(await _view(request.app[QUEUE], agent_id))

    return handle


async def pause(request: web.Request) -> web.Response:
    agent_id = await _target(request)
    body = await _body(request, {"reason", "after_call"})
    reason = body.get("reason")
    if not isinstance(reason, str) or not REASON.fullmatch(reason):
        raise PayloadError("reason", "is a short reason of a-z, 0-9, _ and -, e.g. lunch")
    await request.app[QUEUE].pause(agent_id, reason, after_call=_flag(body, "after_call"))
    return ok(await _view(request.app[QUEUE], agent_id))


async def logout(request: web.Request) -> web.Response:
    agent_id = await _target(request)
    body = await _body(request, {"after_call"})
    after_call = _flag(body, "after_call")
    await request.app[QUEUE].logout(agent_id, after_call=after_call)
    if not after_call:
        await request.app[PRESENCE].logout(agent_id)
    view = await _view(request.app[QUEUE], agent_id)
    return ok({**view, "logged_in": view["state"] != "logged_out"})


async def agents(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.actor.role in NOT_OFFICE:
        raise Forbidden("role_forbidden", "the office's agents are the office's business")
    snapshot = await request.app[QUEUE].snapshot()
    on_duty = [agent_json(a, a.agent_id) for a in snapshot.agents if a.state.value != "logged_out"]
    return ok({"agents": on_duty})


async def queue(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.actor.role in NOT_OFFICE:
        raise Forbidden("role_forbidden", "the office's queue is the office's business")
    service = request.app[QUEUE]
    snapshot = await service.snapshot()
    body = _queue(snapshot)
    wait = await service.estimated_wait(Priority.NORMAL)
    body["estimated_wait"] = round(wait, 1) if math.isfinite(wait) else None
    return ok(body)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; public like /readyz: figures only, no caller, no call id."""
    service = request.app[QUEUE]
    body = service.metrics.render(await service.snapshot())
    for more in request.app.get(MORE_METRICS, ()):  # other parts' figures (the callbacks)
        body += await more(request.app)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/agents/me/login", login)
    for who in ("me", "{agent}"):
        r.add_post(f"/api/v1/agents/{who}/ready", _plain(QueueService.ready))
        r.add_post(f"/api/v1/agents/{who}/pause", pause)
        r.add_post(f"/api/v1/agents/{who}/unpause", _plain(QueueService.unpause))
        r.add_post(f"/api/v1/agents/{who}/wrap-up/end", _plain(QueueService.end_wrap_up))
        r.add_post(f"/api/v1/agents/{who}/logout", logout)
    r.add_get("/api/v1/agents", agents)
    r.add_get("/api/v1/queue", queue)
    r.add_get("/metrics", metrics)
