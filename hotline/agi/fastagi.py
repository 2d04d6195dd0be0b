"""A thin asyncio FastAGI server over the sans-I/O core.

Asterisk connects to ``agi://host:4573/<script>?<query>`` once per ``AGI()`` call, sends the
environment and waits for commands. Each connection is an ``asyncio.Protocol`` that feeds the
bytes it receives straight into the core and wakes the call's task when an event is complete;
each call runs as its own task: read the environment, route by script path, run the handler
with an :class:`AGISession`, close. (A Protocol rather than StreamReader/StreamWriter: one
fewer buffer copy and wake-up per reply — see bench/fastagi_bench.py.)

Idle timeouts are enforced by one watchdog task per server, not a timer per read: while a call
waits on Asterisk it carries a deadline; the watchdog aborts connections past theirs.

Fail-safe (DESIGN: calls never strand): an unknown script, a malformed peer, a handler that
raises, a timeout or the connection cap all end the same way — the socket closes, Asterisk
returns to the dialplan, and the dialplan takes its safe path because the handler never set
``HOTLINE_ROUTE``. Where the channel is still reachable, ``HOTLINE_AGI_ERROR`` names the cause.

Who may talk to us: a FastAGI session can register tickets and call-back tasks, so it is only
served when (1) the connection comes from an allowed peer (``allowed_peers``: addresses or
networks; checked when the connection is made, before a byte of it is read) and (2) the AGI
URL carries the shared secret (``agi://host:port/ivr?secret=…``, i.e. ``agi_network_script``;
checked once the environment is read, before anything is sent or run). A refused session runs
nothing and is sent nothing: it is logged at WARNING (peer and reason; never the secret, the
caller masked), counted in ``refusals`` and closed. Without a secret every session is refused.
Handlers never see the secret: it is taken out of ``agi_network_script`` and ``agi_request``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import parse_qsl, quote, urlencode

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

ERROR_VARIABLE = "HOTLINE_AGI_ERROR"
SECRET_PARAM = "secret"  # agi://host:port/ivr?secret=…
DEFAULT_ALLOWED_PEERS = ("127.0.0.0/8", "::1")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Admit = Callable[[object], bool]  # peername -> may it talk to us (logs and counts if not)


class AGIStreamProtocol(asyncio.Protocol):
    """One FastAGI connection; implements ``CommandRunner`` for the call's task."""

    def __init__(self, idle_timeout: float, admit: Admit | None = None) -> None:
        self.idle_timeout = idle_timeout
        self.connection = AGIConnection()
        self.transport: asyncio.Transport | None = None
        self._admit = admit
        self.peer: object = None  # the transport's peername
        self.refused = False  # not an allowed peer: dropped on connect, nothing read
        self._waiter: asyncio.Future[None] | None = None
        self._env: Environment | None = None
        self._lost = False
        self.commands = 0
        # While we wait on Asterisk, the monotonic time by which it must have answered.
        self.deadline: float | None = None
        self.timed_out = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        if self._admit is not None and not self._admit(self.peer):
            self.refused = True
            transport.abort()  # connection_lost wakes the call's task, which ends quietly

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        try:
            self.connection.receive_data(data)
        except AGIProtocolError:  # a flood; the call's task sees the error on its next read
            if self.transport is not None:
                self.transport.abort()
        self._wake()

    def eof_received(self) -> bool:
        self.connection.receive_data(b"")
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        with contextlib.suppress(AGIProtocolError):
            self.connection.receive_data(b"")
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- CommandRunner ---------------------------------------------------------------------
    @property
    def env(self) -> Environment:
        if self._env is None:
            raise RuntimeError("environment not read yet")
        return self._env

    @property
    def hung_up(self) -> bool:
        return self.connection.hung_up or self._lost

    def expire(self) -> None:
        """Called by the watchdog: Asterisk went silent; drop the connection."""
        self.timed_out = True
        if self.transport is not None:
            self.transport.abort()

    async def _next(self) -> Event:
        while True:
            if self.timed_out:
                raise AGITimeout("no reply from Asterisk within the idle timeout")
            event = self.connection.next_event()
            if event is not NEED_DATA:
                return event  # type: ignore[return-value]
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    async def read_environment(self) -> Environment:
        self.deadline = time.monotonic() + self.idle_timeout
        try:
            event = await self._next()
        finally:
            self.deadline = None
        if isinstance(event, Closed):
            raise AGIHangup("closed before the environment")
        assert isinstance(event, Environment)  # the core yields nothing else in that state
        self._env = event
        return event

    async def execute(self, command: Command, extra_time: float = 0.0) -> Response:
        data = self.connection.send(command)
        if self._lost or self.transport is None:
            raise AGIHangup(f"{command.verb}: connection lost")
        self.transport.write(data)  # one small line; Asterisk reads it before it replies
        self.commands += 1
        self.deadline = time.monotonic() + self.idle_timeout + extra_time
        try:
            while True:
                reply = final_reply(command, await self._next())
                if reply is not None:
                    return reply
        finally:
            self.deadline = None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


@dataclass(slots=True)
class AGISession:
    """What a script handler gets: the call's environment and its channel commands."""

    env: Environment
    channel: AGIChannel

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


def parse_peers(peers: str | Iterable[str]) -> tuple[Network, ...]:
    """``"127.0.0.0/8,::1"`` (or its items) as networks; ValueError on a bad item."""
    items = peers.split(",") if isinstance(peers, str) else list(peers)
    return tuple(ipaddress.ip_network(item.strip(), strict=True) for item in items if item.strip())


def peer_address(peername: object) -> Address | None:
    """The IP address of a transport's peername (IPv4-mapped IPv6 as IPv4), or None."""
    host = peername[0] if isinstance(peername, tuple) and peername else None
    if not isinstance(host, str):
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # no IPv6 zone
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _shown(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        return f"{peername[0]}:{peername[1]}"
    return "?"


def _without_param(url: str, name: str) -> str:
    path, sep, query = url.partition("?")
    if not sep:
        return url
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != name]
    return f"{path}?{urlencode(kept, quote_via=quote)}" if kept else path


def without_secret(env: Environment) -> Environment:
    """The environment as handlers see it: the secret taken out of the AGI URL."""
    variables = dict(env.variables)
    for key in ("agi_network_script", "agi_request"):
        if key in variables:
            variables[key] = _without_param(variables[key], SECRET_PARAM)
    return Environment(MappingProxyType(variables))


class FastAGIServer:
    """Accepts Asterisk's FastAGI connections and runs one task per call.

    Only ``allowed_peers`` (IP addresses or networks, a list or a comma-separated string) may
    connect, and only sessions whose AGI URL carries ``secret`` are served; with no secret
    (the default) every session is refused.
    """

    def __init__(
        self,
        router: Router,
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        idle_timeout: float = 30.0,
        max_connections: int = 1000,
        allowed_peers: str | Iterable[str] = DEFAULT_ALLOWED_PEERS,
        secret: str = "",
    ) -> None:
        self.router = router
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.allowed_peers = parse_peers(allowed_peers)
        self._secret = secret.encode()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._calls: set[AGIStreamProtocol] = set()  # every open connection (for the watchdog)
        self._serving = 0  # calls past the cap check
        self._watchdog: asyncio.Task[None] | None = None
        self.accepted = 0  # connections
        # sessions refused: over the cap, from a peer not allowed, without the right secret
        self.refusals = {"busy": 0, "peer": 0, "secret": 0}
        self.completed = 0  # calls served to the end

    @property
    def refused(self) -> int:
        """Sessions refused, for every reason (``refusals`` has them by reason)."""
        return sum(self.refusals.values())

    @property
    def active(self) -> int:
        """Calls being served (refused connections are counted in ``refused``)."""
        return self._serving

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection, self.host, self.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._watchdog = asyncio.create_task(self._watch())
        log.info("FastAGI listening on agi://%s:%d", self.host, self.port)
        if not self._secret:
            log.error(
                "FastAGI: no secret set (server.agi_secret, HOTLINE_SERVER_AGI_SECRET): every "
                "session is refused and calls take the dialplan's safe path; set it and call "
                "agi://%s:%d/ivr?%s=<the secret> from the dialplan",
                self.host,
                self.port,
                SECRET_PARAM,
            )

    @property
    def connections(self) -> int:
        """Open connections, served or not."""
        return len(self._calls)

    def _admit(self, peername: object) -> bool:
        """On connect, before anything is read: is the peer allowed? Logs and counts if not."""
        address = peer_address(peername)
        if address is not None and any(address in net for net in self.allowed_peers):
            return True
        self.refusals["peer"] += 1
        log.warning(
            "FastAGI: refused a connection from %s: not an allowed peer (server.agi_allowed_peers)",
            _shown(peername),
        )
        return False

    def _secret_problem(self, env: Environment) -> str | None:
        if not self._secret:
            return "no secret is set on this server (server.agi_secret)"
        given = env.params.get(SECRET_PARAM)
        if given is None:
            return "no secret in the AGI URL"
        if not hmac.compare_digest(given.encode(), self._secret):
            return "wrong secret in the AGI URL"
        return None

    def _connection(self) -> AGIStreamProtocol:
        self.accepted += 1
        call = AGIStreamProtocol(self.idle_timeout, self._admit)
        task = asyncio.get_running_loop().create_task(self._call(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call

    async def _call(self, call: AGIStreamProtocol) -> None:
        """One connection: environment first, then the cap, the route and the handler.

        The cap counts calls being served, so a connection that never sends its environment
        (bounded by the idle timeout) or is refused does not take a served call's place.
        """
        self._calls.add(call)
        try:
            if call.refused:  # not an allowed peer (logged and counted on connect)
                return
            try:
                env = await call.read_environment()
            except AGIError as exc:
                if not call.refused:
                    peer = _shown(call.peer)
                    log.warning("FastAGI: no usable environment from %s: %s", peer, exc)
                return
            problem = self._secret_problem(env)
            if problem is not None:  # nothing sent, nothing run
                self.refusals["secret"] += 1
                log.warning(
                    "FastAGI: refused a session from %s (call %r, caller %r): %s",
                    _shown(call.peer),
                    env.unique_id,
                    mask_phone(env.caller_number),  # rule Y-1
                    problem,
                )
                return
            env = without_secret(env)
            if self._serving >= self.max_connections or self._server is None:
                self.refusals["busy"] += 1
                log.warning(
                    "FastAGI connection cap (%d) reached; call %s goes to the dialplan's safe path",
                    self.max_connections,
                    env.unique_id or "?",
                )
                await _flag_error(call, "busy")
                return
            self._serving += 1
            try:
                await self._serve(call, env)
            finally:
                self._serving -= 1
                self.completed += 1
        finally:
            self._calls.discard(call)
            call.close()

    async def _watch(self) -> None:
        """Expire connections whose Asterisk has been silent past its deadline."""
        interval = max(0.05, min(1.0, self.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for call in [c for c in self._calls if c.deadline is not None and c.deadline < now]:
                call.expire()

    async def _serve(self, runner: AGIStreamProtocol, env: Environment) -> None:
        handler = self.router.get(env.script)
        call = env.unique_id or "?"
        if handler is None:
            log.warning("FastAGI call %s asked for unknown script %r", call, env.script)
            await _flag_error(runner, "unknown-script")
            return
        if log.isEnabledFor(logging.INFO):
            caller = mask_phone(env.caller_number)  # rule Y-1
            log.info("FastAGI call %s script=%s caller=%s", call, env.script, caller)
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
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None


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
