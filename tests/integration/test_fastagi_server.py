"""The FastAGI server over real TCP, against a peer that speaks AGI as Asterisk does."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hotline.agi.channel import AGIHangup
from hotline.agi.fastagi import AGISession, FastAGIServer, Router, parse_peers, peer_address
from hotline.agi.testing import DEFAULT_ENV, env_block

WAIT = 10.0  # upper bound so a broken server fails the test instead of hanging it
SECRET = "test-secret-0123456789"  # what the dialplan puts in the AGI URL


class Peer:
    """Asterisk's side of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(
        cls,
        port: int,
        script: str = "ivr",
        secret: str | None = SECRET,
        source: str | None = None,
        **extra: str,
    ) -> Peer:
        """Connect (from ``source``, an address of the loopback network) and send the
        environment of ``agi://127.0.0.1:port/<script>``, with ``secret`` in its query."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        if secret is not None:
            script += ("&" if "?" in script else "?") + f"secret={secret}"
        request = f"agi://127.0.0.1:{port}/{script}"
        env = dict(DEFAULT_ENV, agi_network_script=script, agi_request=request, **extra)
        writer.write(env_block(env))
        await writer.drain()
        return cls(reader, writer)

    async def command(self) -> str:
        """The next command line, or "" when the server closed."""
        line = await asyncio.wait_for(self.reader.readline(), WAIT)
        return line.decode().rstrip("\n")

    async def reply(self, text: str) -> None:
        self.writer.write(text.encode() + b"\n")
        await self.writer.drain()

    async def closed(self) -> bool:
        """True once the server closed or reset the connection."""
        try:
            return await asyncio.wait_for(self.reader.read(), WAIT) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[AGISession], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[FastAGIServer]]]:
    servers: list[FastAGIServer] = []

    async def start(routes: dict[str, Handler], **options: object) -> FastAGIServer:
        router = Router()
        for path, handler in routes.items():
            router.add(path, handler)
        options.setdefault("secret", SECRET)
        server = FastAGIServer(router, host="127.0.0.1", port=0, **options)  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close(grace=1.0)


async def test_script_is_routed_by_path_with_query_and_arguments(serve) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, object] = {}

    async def progress(session: AGISession) -> None:
        seen.update(script=session.script, params=dict(session.params), args=session.args)
        await session.channel.set_variable("HOTLINE_ROUTE", "progress")

    server = await serve({"ivr/progress": progress})
    peer = await Peer.connect(
        server.port, "ivr/progress?lang=zh", agi_arg_1="t-42", agi_arg_2="x y"
    )
    assert await peer.command() == "SET VARIABLE HOTLINE_ROUTE progress"
    await peer.reply("200 result=1")
    assert await peer.closed()
    assert seen == {"script": "ivr/progress", "params": {"lang": "zh"}, "args": ("t-42", "x y")}


async def test_unknown_script_tells_the_dialplan_and_closes(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve({})
    peer = await Peer.connect(server.port, "nope")
    assert await peer.command() == "SET VARIABLE HOTLINE_AGI_ERROR unknown-script"
    await peer.reply("200 result=1")
    assert await peer.closed()


async def test_a_failing_handler_is_logged_and_the_call_goes_back_to_the_dialplan(
    serve,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    async def broken(session: AGISession) -> None:
        await session.channel.answer()
        raise RuntimeError("bug in a flow")

    server = await serve({"ivr": broken})
    peer = await Peer.connect(server.port)
    assert await peer.command() == "ANSWER"
    await peer.reply("200 result=0")
    assert await peer.command() == "SET VARIABLE HOTLINE_AGI_ERROR RuntimeError"
    await peer.reply("200 result=1")
    assert await peer.closed()
    assert any("1700000000.1" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_silent_asterisk_hits_the_idle_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    outcome: list[str] = []

    async def waits(session: AGISession) -> None:
        try:
            await session.channel.answer()
        except Exception as exc:
            outcome.append(type(exc).__name__)
            raise

    server = await serve({"ivr": waits}, idle_timeout=0.3)
    peer = await Peer.connect(server.port)
    assert await peer.command() == "ANSWER"
    assert await peer.closed()  # no reply from us; the server gave up
    assert outcome == ["AGITimeout"]


async def test_hangup_in_the_middle_of_a_command_reaches_the_handler(serve) -> None:  # type: ignore[no-untyped-def]
    outcome: list[str] = []

    async def plays(session: AGISession) -> None:
        try:
            await session.channel.stream_file("hotline/welcome", "1")
        except AGIHangup:
            outcome.append("hangup")
            raise

    server = await serve({"ivr": plays})
    peer = await Peer.connect(server.port)
    assert (await peer.command()).startswith("STREAM FILE hotline/welcome")
    await peer.reply("HANGUP")
    await peer.reply("200 result=-1 endpos=1200")
    assert await peer.closed()
    assert outcome == ["hangup"]


def holding() -> tuple[asyncio.Event, Callable[[AGISession], Awaitable[None]]]:
    """A handler that answers and holds the call until the event is set."""
    release = asyncio.Event()

    async def holds(session: AGISession) -> None:
        await session.channel.answer()
        await release.wait()

    return release, holds


async def test_connection_cap_refuses_the_extra_call_without_a_command(serve) -> None:  # type: ignore[no-untyped-def]
    release, holds = holding()
    server = await serve({"ivr": holds}, max_connections=1)
    first = await Peer.connect(server.port)
    assert await first.command() == "ANSWER"
    second = await Peer.connect(server.port)
    assert await second.command() == "SET VARIABLE HOTLINE_AGI_ERROR busy"
    await second.reply("200 result=1")
    assert await second.closed()
    assert server.refused == 1 and server.active == 1
    await first.reply("200 result=0")
    release.set()
    assert await first.closed()


async def test_garbage_instead_of_an_environment_is_dropped(serve) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []

    async def never(session: AGISession) -> None:
        calls.append("ran")

    server = await serve({"ivr": never})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    assert calls == []
    writer.close()


async def test_many_calls_run_concurrently(serve) -> None:  # type: ignore[no-untyped-def]
    started = 0
    all_in = asyncio.Event()

    async def meets(session: AGISession) -> None:
        nonlocal started
        started += 1
        if started == 40:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), WAIT)  # only passes if all 40 run at once
        await session.channel.set_variable("HOTLINE_ROUTE", "help")

    server = await serve({"ivr": meets})
    peers = await asyncio.gather(*(Peer.connect(server.port) for _ in range(40)))

    async def finish(peer: Peer) -> bool:
        assert await peer.command() == "SET VARIABLE HOTLINE_ROUTE help"
        await peer.reply("200 result=1")
        return await peer.closed()

    assert all(await asyncio.gather(*(finish(p) for p in peers)))


async def test_graceful_shutdown_lets_running_calls_finish(serve) -> None:  # type: ignore[no-untyped-def]
    finished: list[str] = []

    async def slow(session: AGISession) -> None:
        await session.channel.answer()
        await session.channel.set_variable("HOTLINE_ROUTE", "help")
        finished.append(session.call_id)

    server = await serve({"ivr": slow})
    peer = await Peer.connect(server.port)
    assert await peer.command() == "ANSWER"
    closing = asyncio.create_task(server.close(grace=5.0))
    await asyncio.sleep(0.05)
    with pytest.raises(OSError):  # no longer accepting
        await Peer.connect(server.port)
    await peer.reply("200 result=0")
    assert await peer.command() == "SET VARIABLE HOTLINE_ROUTE help"
    await peer.reply("200 result=1")
    await asyncio.wait_for(closing, WAIT)
    assert finished == ["1700000000.1"]


async def test_shutdown_cancels_calls_that_outlive_the_grace(serve) -> None:  # type: ignore[no-untyped-def]
    async def stuck(session: AGISession) -> None:
        await session.channel.answer()

    server = await serve({"ivr": stuck}, idle_timeout=60.0)
    peer = await Peer.connect(server.port)
    assert await peer.command() == "ANSWER"
    await asyncio.wait_for(server.close(grace=0.2), WAIT)
    assert await peer.closed()
    assert server.active == 0


async def test_connection_closed_before_the_environment_is_let_go(serve) -> None:  # type: ignore[no-untyped-def]
    # panoramisk 1.4 spins at 100% CPU on such a connection (reads b"" forever); we must not.
    server = await serve({"ivr": lambda session: asyncio.sleep(0)})
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.close()
    for _ in range(250):
        if server.accepted == 1 and server.connections == 0:
            break
        await asyncio.sleep(0.02)
    assert (server.accepted, server.connections, server.active) == (1, 0, 0)


async def test_a_flooding_peer_is_cut_off_while_the_handler_is_busy(serve) -> None:  # type: ignore[no-untyped-def]
    async def busy(session: AGISession) -> None:
        await session.channel.answer()
        await asyncio.sleep(60)  # not reading: the bytes would pile up

    server = await serve({"ivr": busy})
    peer = await Peer.connect(server.port)
    assert await peer.command() == "ANSWER"
    await peer.reply("200 result=0")
    with contextlib.suppress(ConnectionError):
        for _ in range(64):
            peer.writer.write(b"200 result=0\n" * 2000)  # 1.6 MB in all
            await peer.writer.drain()
    assert await peer.closed()  # dropped long before the handler would have ended


async def test_refused_connections_do_not_take_a_served_calls_place(serve) -> None:  # type: ignore[no-untyped-def]
    release, holds = holding()
    server = await serve({"ivr": holds}, max_connections=2)
    first = await Peer.connect(server.port)
    assert await first.command() == "ANSWER"
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)  # sends nothing
    await asyncio.sleep(0.05)
    second = await Peer.connect(server.port)  # the silent one is not a served call
    assert await second.command() == "ANSWER"
    assert server.active == 2
    writer.close()
    release.set()
    for peer in (first, second):
        await peer.reply("200 result=0")
        assert await peer.closed()


# -- who may talk to us: allowed peers and the shared secret -----------------------------------
class Spy:
    """A handler that records whether it ran and what it saw."""

    def __init__(self) -> None:
        self.sessions: list[AGISession] = []

    async def __call__(self, session: AGISession) -> None:
        self.sessions.append(session)
        await session.channel.set_variable("HOTLINE_ROUTE", "help")


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hotline.agi.fastagi" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize(
    ("secret", "reason"),
    [("wrong-secret-0123456789", "wrong secret"), (None, "no secret in the AGI URL")],
)
async def test_a_session_without_the_right_secret_runs_nothing_and_is_sent_nothing(
    serve,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
    secret: str | None,
    reason: str,
) -> None:
    spy = Spy()
    server = await serve({"ivr": spy})
    peer = await Peer.connect(server.port, secret=secret, agi_callerid="13912340249")
    assert await peer.closed()  # closed, and not one byte (no command) came before that
    assert spy.sessions == []
    assert server.refusals == {"busy": 0, "peer": 0, "secret": 1} and server.refused == 1
    assert server.active == 0 and server.completed == 0
    (line,) = refusals(caplog)
    assert "127.0.0.1:" in line and reason in line and "1700000000.1" in line
    assert "139****0249" in line and "13912340249" not in line  # rule Y-1
    for record in caplog.records:  # the secret is never logged, the right one nor the wrong
        assert SECRET not in record.getMessage()
        assert secret is None or secret not in record.getMessage()


async def test_the_secret_is_checked_before_the_connection_cap_sends_its_busy_flag(serve) -> None:  # type: ignore[no-untyped-def]
    release, holds = holding()
    server = await serve({"ivr": holds}, max_connections=1)
    first = await Peer.connect(server.port)
    assert await first.command() == "ANSWER"
    forged = await Peer.connect(server.port, secret="wrong-secret-0123456789")
    assert await forged.closed()  # no "SET VARIABLE HOTLINE_AGI_ERROR busy" for it
    assert server.refusals["secret"] == 1 and server.refusals["busy"] == 0
    await first.reply("200 result=0")
    release.set()
    assert await first.closed()


async def test_a_server_without_a_secret_refuses_every_session_and_says_so_at_start(
    serve,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    spy = Spy()
    server = await serve({"ivr": spy}, secret="")
    assert any(
        r.levelno == logging.ERROR and "server.agi_secret" in r.getMessage() for r in caplog.records
    )
    for secret in ("", None, "anything-at-all-0123"):
        peer = await Peer.connect(server.port, secret=secret)
        assert await peer.closed()
    assert spy.sessions == [] and server.refusals["secret"] == 3


async def test_a_peer_that_is_not_allowed_is_dropped_on_connect(
    serve,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    spy = Spy()
    server = await serve({"ivr": spy}, allowed_peers="127.0.0.1")
    forged = await Peer.connect(server.port, source="127.0.0.2")  # the right secret, even
    assert await forged.closed()
    assert spy.sessions == []
    assert server.refusals == {"busy": 0, "peer": 1, "secret": 0}
    (line,) = refusals(caplog)
    assert "127.0.0.2:" in line and "not an allowed peer" in line
    assert "environment" not in line  # dropped before its environment was read
    # from the allowed address the same session is served
    peer = await Peer.connect(server.port, source="127.0.0.1")
    assert await peer.command() == "SET VARIABLE HOTLINE_ROUTE help"
    await peer.reply("200 result=1")
    assert await peer.closed()
    assert len(spy.sessions) == 1


async def test_allowed_peers_are_networks_and_addresses(serve) -> None:  # type: ignore[no-untyped-def]
    spy = Spy()
    server = await serve({"ivr": spy}, allowed_peers=["10.0.0.0/8", "127.0.0.2/31"])
    for source, served in (("127.0.0.3", True), ("127.0.0.4", False), ("127.0.0.1", False)):
        peer = await Peer.connect(server.port, source=source)
        if served:
            assert await peer.command() == "SET VARIABLE HOTLINE_ROUTE help"
            await peer.reply("200 result=1")
        assert await peer.closed()
    assert len(spy.sessions) == 1 and server.refusals["peer"] == 2


async def test_by_default_only_loopback_may_connect(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve({"ivr": Spy()})
    assert server.allowed_peers == parse_peers("127.0.0.0/8,::1")


async def test_handlers_never_see_the_secret(serve) -> None:  # type: ignore[no-untyped-def]
    spy = Spy()
    server = await serve({"ivr/progress": spy})
    peer = await Peer.connect(server.port, "ivr/progress?lang=zh")
    assert await peer.command() == "SET VARIABLE HOTLINE_ROUTE help"
    await peer.reply("200 result=1")
    assert await peer.closed()
    (session,) = spy.sessions
    assert session.script == "ivr/progress" and dict(session.params) == {"lang": "zh"}
    assert SECRET not in str(dict(session.env.variables))
    assert session.env.get("agi_request") == f"agi://127.0.0.1:{server.port}/ivr/progress?lang=zh"


def test_peer_addresses_are_read_as_asterisk_s_socket_gives_them() -> None:
    assert peer_address(("127.0.0.1", 4573)) == ipaddress.ip_address("127.0.0.1")
    assert peer_address(("::ffff:127.0.0.1", 1, 0, 0)) == ipaddress.ip_address("127.0.0.1")
    assert peer_address(("fe80::1%lo", 1, 0, 1)) == ipaddress.ip_address("fe80::1")
    assert peer_address(None) is None and peer_address(("nonsense", 1)) is None
    with pytest.raises(ValueError):
        parse_peers("127.0.0.1/8")  # host bits set: a typo, not a network
