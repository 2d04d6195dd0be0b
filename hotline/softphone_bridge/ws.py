"""The console's socket: ``GET /api/v1/console/socket`` (a WebSocket; see ``PROTOCOL.md``).

A browser cannot put an ``Authorization`` header on a WebSocket, and a token in the URL ends up
in access logs: the first message is ``hello`` with the token. The socket then belongs to the
agent's session (:class:`~hotline.softphone_bridge.bridge.Bridge`); what the bridge queues for
it is written by one task, in order; the token is asked again every
``server.console_token_recheck`` seconds and a revoked one closes the socket (4401). Open
sockets are the application's: shutdown closes them with GOING_AWAY (1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSMsgType, web

from hotline.appkeys import SETTINGS
from hotline.errors import Throttled, Unauthorized
from hotline.softphone_bridge import protocol
from hotline.softphone_bridge.bridge import Bridge, Closing, Session
from hotline.softphone_bridge.protocol import Command, ProtocolError
from hotline.ticketing.model import Role
from hotline.ticketing.users import User
from hotline.web import AUTH, Handler, current_user, error, json_body, ok

log = logging.getLogger(__name__)
BRIDGE = web.AppKey("softphone_bridge", Bridge)
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("console_sockets")
CONSOLE_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.DUTY_LEADER)  # the latter two watch


async def _say(ws: web.WebSocketResponse, message: dict[str, object]) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):  # closing already
        await ws.send_str(protocol.encode(message))


async def _refuse(ws: web.WebSocketResponse, code: int, error: str, message: str) -> None:
    await _say(ws, {"type": "error", "seq": 0, "code": error, "message": message})
    await ws.close(code=code, message=error.encode())


async def _hello(request: web.Request, ws: web.WebSocketResponse) -> tuple[Session, Command] | None:
    """The first message: ``hello`` with a token. None: the socket was refused and closed."""
    try:
        first = await ws.receive(timeout=protocol.HELLO_WITHIN)
    except TimeoutError:
        await _refuse(ws, protocol.NO_HELLO, "no_hello", "send hello first")
        return None
    if first.type != WSMsgType.TEXT:
        if first.type not in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            await _refuse(ws, protocol.NO_HELLO, "no_hello", "send hello first")
        return None
    try:
        hello = protocol.parse(first.data)
    except ProtocolError as exc:
        code = protocol.UNAUTHORIZED if "token" in exc.message else protocol.NO_HELLO
        await _refuse(ws, code, exc.code, exc.message)
        return None
    if hello.type != "hello":
        await _refuse(ws, protocol.NO_HELLO, "no_hello", "send hello first")
        return None
    try:
        user = await request.app[AUTH].token_user(  # fresh: a token revoked a moment ago
            hello.fields["token"], request.remote or "unknown", fresh=True
        )
    except (Unauthorized, Throttled) as exc:
        await _refuse(ws, protocol.UNAUTHORIZED, "unauthorized", str(exc))
        return None
    if user.actor.role not in CONSOLE_ROLES:
        await _refuse(
            ws,
            protocol.FORBIDDEN,
            "role_forbidden",
            "the console is for agents, supervisors and duty leaders",
        )
        return None
    return Session(user), hello


async def _pump(session: Session, ws: web.WebSocketResponse, reader: asyncio.Task[None]) -> None:
    """Write what the bridge queues for the session, in order. A Closing stops the reader: the
    handler then closes the socket with its code — from the reading task, as aiohttp wants it
    (a close from another task while one reads drops the connection before the peer's answer,
    and the peer sees 1006)."""
    while True:
        item = await session.outgoing.get()
        if isinstance(item, Closing):
            session.closing = item
            reader.cancel()
            return
        await ws.send_str(protocol.encode(item))


async def _recheck(request: web.Request, session: Session, token: str) -> None:
    every = request.app[SETTINGS].server.console_token_recheck
    while True:
        await asyncio.sleep(every)
        try:
            await request.app[AUTH].token_user(token, request.remote or "unknown", fresh=True)
        except (Unauthorized, Throttled):
            log.info("softphone: a console's token is no longer valid; closed")
            session.push({"type": "error", "seq": 0, "code": "unauthorized", "message": "revoked"})
            session.finish(protocol.UNAUTHORIZED, "unauthorized")
            return
        except Exception as exc:  # the database is down: the socket goes on until it is back
            log.warning("softphone: could not check a console's token (%s)", exc)


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=protocol.MAX_FRAME)
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    try:
        return await _console(request, ws)
    finally:
        sockets.discard(ws)


async def _console(request: web.Request, ws: web.WebSocketResponse) -> web.WebSocketResponse:
    opened = await _hello(request, ws)
    if opened is None:
        return ws
    session, hello = opened
    bridge = request.app[BRIDGE]
    while True:  # a second console is refused until it asks to take over
        try:
            await bridge.open(session, hello.fields.get("last_seq"), hello.flag("take_over"))
            break
        except ProtocolError as exc:
            await _say(ws, {"type": "error", "seq": 0, "code": exc.code, "message": exc.message})
        except Exception as exc:  # Redis (the shared outbox) away: the console tries again
            log.warning("softphone: a console could not open (%s)", type(exc).__name__)
            bridge.end(session)
            await _refuse(ws, protocol.TRY_AGAIN, "unavailable", "try again in a moment")
            return ws
        again = await _next_hello(ws)
        if again is None:
            return ws
        hello = again
    reader = asyncio.create_task(_serve(bridge, session, ws))
    pump = asyncio.create_task(_pump(session, ws, reader))
    recheck = asyncio.create_task(_recheck(request, session, hello.fields["token"]))
    try:
        try:
            await reader
        except asyncio.CancelledError:
            if session.closing is None:  # this handler is cancelled, not only its reading
                raise
        if session.closing is not None:  # taken over, revoked, too slow, shutting down
            closing = session.closing
            await ws.close(code=closing.code, message=closing.reason.encode())
    finally:
        bridge.end(session)
        for task in (pump, recheck, reader):
            task.cancel()
        await asyncio.gather(pump, recheck, reader, return_exceptions=True)
    return ws


async def _next_hello(ws: web.WebSocketResponse) -> Command | None:
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            command = protocol.parse(message.data)
        except ProtocolError as exc:
            await _say(ws, {"type": "error", "seq": 0, "code": exc.code, "message": exc.message})
            continue
        if command.type == "hello":
            return command
        await _say(
            ws,
            {
                "type": "error",
                "seq": 0,
                "code": "session_active",
                "ref": command.ref,
                "message": "another console is connected: send hello with take_over",
            },
        )
    return None


async def _serve(bridge: Bridge, session: Session, ws: web.WebSocketResponse) -> None:
    async for message in ws:
        if message.type == WSMsgType.ERROR:
            return
        seq = await bridge.outbox.last(session.agent_id)
        if message.type != WSMsgType.TEXT:
            session.push(
                {
                    "type": "error",
                    "seq": seq,
                    "code": "not_json",
                    "message": "a message is one JSON object, as text",
                }
            )
            continue
        ref = None
        try:
            command = protocol.parse(message.data)
            ref = command.ref
            if command.type == "hello":
                raise ProtocolError("bad_field", "hello is the first message only")
            # shielded: a close (a take-over) stops the reading, not a command half done
            reply = await asyncio.shield(bridge.command(session.user, command))
        except ProtocolError as exc:
            reply = {"type": "error", "code": exc.code, "message": exc.message}
        except Exception as exc:  # the queue refused (a state the table does not allow), …
            code = getattr(exc, "code", None)
            if not isinstance(code, str):
                log.exception("softphone: a command of %s failed", session.agent_id)
                code = "internal"
            reply = {"type": "error", "code": code, "message": str(exc)[:200]}
        if ref is not None:
            reply["ref"] = ref
        reply["seq"] = await bridge.outbox.last(session.agent_id)
        session.push(reply)


async def close_all(app: web.Application) -> None:
    """Shutdown: sessions are told (GOING_AWAY), then every socket still open is closed."""
    await app[BRIDGE].close()
    await asyncio.sleep(0)  # the pumps write the last words
    sockets = app[SOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=protocol.GOING_AWAY, message=b"the backend is shutting down")


# the HTTP API's call controls: ProtocolError codes as statuses
STATUS = {
    "bad_field": 400,
    "role_forbidden": 403,
    "not_your_call": 403,
    "not_talking": 409,
    "call_elsewhere": 409,
    "bad_transfer": 409,
    "no_such_agent": 409,
    "unknown_utility": 409,
    "utility_on_call": 409,
    "no_directory": 503,
    "switch_unavailable": 503,
    "unavailable": 503,
}
CALL_CONTROLS = {
    "hold": "hold",
    "unhold": "unhold",
    "transfer": "transfer",
    "hang-up": "hang_up",
    "utility": "utility",
}


def call_control(kind: str) -> Handler:
    """``POST /api/v1/agents/me/calls/{call}/<control>``: what the console sends over its
    socket, for an agent's desktop tool that speaks HTTP."""

    async def handle(request: web.Request) -> web.Response:
        user = await current_user(request)
        body = await json_body(request) if request.can_read_body else {}
        message = {**body, "type": kind, "call": request.match_info["call"]}
        return await _control_reply(request, message, user)

    return handle


async def _control_reply(request: web.Request, message: dict[str, Any], user: User) -> web.Response:
    try:
        command = protocol.parse(protocol.encode(message))
        reply = await request.app[BRIDGE].command(user, command)
    except ProtocolError as exc:
        status = STATUS.get(exc.code, 400)
        return error(status, exc.code, exc.message)
    reply.pop("type", None)
    return ok(reply)


def setup(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = set()
    app[SOCKETS] = sockets
    app.router.add_get("/api/v1/console/socket", socket)
    for path, kind in CALL_CONTROLS.items():
        app.router.add_post(f"/api/v1/agents/me/calls/{{call}}/{path}", call_control(kind))
    app.on_shutdown.append(close_all)
