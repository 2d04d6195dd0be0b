"""A thin asyncio FastAGI server over the sans-I/O core.

Asterisk connects to ``agi://host:4573/<script>?<query>`` once per ``AGI()`` call, sends the
environment and waits for commands. Each connection runs as its own task: read the
environment, route by script path, run the handler with an :class:`AGISession`, close.

Fail-safe (DESIGN: calls never strand): an unknown script, a malformed peer, a handler that
raises, a timeout or the connection cap all end the same way — the socket closes, Asterisk
returns to the dialplan, and the dialplan takes its safe path because the handler never set
``HOTLINE_ROUTE``. Where the channel is still reachable, ``HOTLINE_AGI_ERROR`` names the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from hotline.agi.channel import (
    AGIChannel,
    AGIHangup,
    AGITimeout,
    CommandRunner,
    final_reply,
)
from hotline.agi.protocol import (
    NEED_DATA,
    AGIConnection,
    AGIError,
    AGIProtocolError,
    Closed,
    Command,
    Environment,
    Event,
    Response,
)
from hotline.privacy import mask_phone

log = logging.getLogger(__name__)

READ_CHUNK = 65536
ERROR_VARIABLE = "HOTLINE_AGI_ERROR"


class StreamRunner:
    """Runs commands over an asyncio stream pair; implements ``CommandRunner``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        idle_timeout: float,
        connection: AGIConnection | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_timeout = idle_timeout
        self.connection = connection or AGIConnection()
        self._env: Environment | None = None
        self.commands = 0

    @property
    def env(self) -> Environment:
        if self._env is None:
            raise RuntimeError("environment not read yet")
        return self._env

    @property
    def hung_up(self) -> bool:
        return self.connection.hung_up

    async def _next(self, deadline: float) -> Event:
        while True:
            event = self.connection.next_event()
            if event is not NEED_DATA:
                return event  # type: ignore[return-value]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AGITimeout("no data from Asterisk within the idle timeout")
            try:
                chunk = await asyncio.wait_for(self.reader.read(READ_CHUNK), remaining)
            except TimeoutError:
                raise AGITimeout("no data from Asterisk within the idle timeout") from None
            except ConnectionError as exc:
                raise AGIHangup(f"connection lost: {exc}") from None
            self.connection.receive_data(chunk)

    async def read_environment(self) -> Environment:
        event = await self._next(time.monotonic() + self.idle_timeout)
        if isinstance(event, Closed):
            raise AGIHangup("closed before the environment")
        assert isinstance(event, Environment)  # the core yields nothing else in that state
        self._env = event
        return event

    async def execute(self, command: Command, extra_time: float = 0.0) -> Response:
        data = self.connection.send(command)
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError as exc:
            raise AGIHangup(f"connection lost: {exc}") from None
        self.commands += 1
        deadline = time.monotonic() + self.idle_timeout + extra_time
        while True:
            reply = final_reply(command, await self._next(deadline))
            if reply is not None:
                return reply


@dataclass(slots=True)
class AGISession:
    """What a script handler gets: the call's environment and its channel commands."""

    env: Environment
    channel: AGIChannel
    started: float = field(default_factory=time.monotonic)

    @property
    def call_id(self) -> str:
        return self.env.unique_id

    @property
    def script(self) -> str:
        return self.env.script

    @property
    def params(self) -> Mapping[str, str]:
        return self.env.params

    @property
    def args(self) -> tuple[str, ...]:
        return self.env.args


Handler = Callable[[AGISession], Awaitable[None]]


class Router:
    """Script path -> handler. Paths are compared without surrounding slashes."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}

    def add(self, script: str, handler: Handler) -> None:
        key = script.strip("/")
        if key in self._routes:
            raise ValueError(f"script {key!r} already routed")
        self._routes[key] = handler

    def get(self, script: str) -> Handler | None:
        return self._routes.get(script.strip("/"))

    def __contains__(self, script: str) -> bool:
        return script.strip("/") in self._routes


class FastAGIServer:
    """Accepts Asterisk's FastAGI connections and runs one task per call."""

    def __init__(
        self,
        router: Router,
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        idle_timeout: float = 30.0,
        max_connections: int = 1000,
    ) -> None:
        self.router = router
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused = 0
        self.completed = 0

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on agi://%s:%d", self.host, self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections or self._server is None:
            self.refused += 1
            log.warning(
                "FastAGI connection cap (%d) reached; call goes to the dialplan's safe path",
                self.max_connections,
            )
            await self._refuse(reader, writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)
            self.completed += 1
            await _close(writer)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the environment (so the close is clean, not a reset), flag ``busy``, close."""
        runner = StreamRunner(reader, writer, min(self.idle_timeout, 2.0))
        with contextlib.suppress(AGIError, OSError):
            await runner.read_environment()
            await _flag_error(runner, "busy")
        await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        runner = StreamRunner(reader, writer, self.idle_timeout)
        try:
            env = await runner.read_environment()
        except AGIError as exc:
            log.warning(
                "FastAGI: no usable environment from %s: %s", writer.get_extra_info("peername"), exc
            )
            return
        handler = self.router.get(env.script)
        call = env.unique_id or "?"
        if handler is None:
            log.warning("FastAGI call %s asked for unknown script %r", call, env.script)
            await _flag_error(runner, "unknown-script")
            return
        log.info(
            "FastAGI call %s script=%s caller=%s", call, env.script, mask_phone(env.caller_number)
        )
        await run_safely(handler, AGISession(env=env, channel=AGIChannel(runner)))

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting; give running calls ``grace`` seconds, then cancel them."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def run_safely(handler: Handler, session: AGISession) -> None:
    """Run a script handler so that nothing it does strands the caller (DESIGN: fail-safe).

    Hang-ups, malformed traffic and timeouts end the session quietly; any other exception is
    logged with the call id and flagged in ``HOTLINE_AGI_ERROR``; in every case the call goes
    back to the dialplan, which takes its safe path when no route was set.
    """
    call = session.call_id or "?"
    try:
        await handler(session)
    except AGIHangup as exc:
        log.info("AGI call %s: caller gone (%s)", call, exc)
    except AGIProtocolError as exc:
        log.warning("AGI call %s: malformed AGI traffic: %s", call, exc)
    except AGITimeout as exc:
        log.warning("AGI call %s: %s", call, exc)
    except asyncio.CancelledError:
        log.warning("AGI call %s cancelled by shutdown; back to the dialplan", call)
        raise
    except Exception as exc:
        log.exception("AGI call %s: script %s failed; back to the dialplan", call, session.script)
        await _flag_error(session.channel.runner, type(exc).__name__)


async def _flag_error(runner: CommandRunner, reason: str) -> None:
    """Best effort: tell the dialplan why; never raises."""
    if runner.hung_up:
        return
    with contextlib.suppress(AGIError, OSError):
        await runner.execute(Command("SET VARIABLE", (ERROR_VARIABLE, reason)))


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)
