"""The composition root: settings in, a running backend out.

The aiohttp application owns every lifecycle (after aio-libs/aiohttp): the database engine, the
Redis client, the journal writer, the FastAGI server and the heartbeat task are set up in
``cleanup_ctx`` generators, stored under typed ``web.AppKey`` keys and torn down in reverse
order. Nothing opens a connection at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from hotline import bootstrap, db, ops
from hotline import web as edge
from hotline.agi.ari import AriClient
from hotline.agi.fastagi import AGISession, FastAGIServer, Handler, Router
from hotline.appkeys import (
    AGI,
    CALENDAR_UNTIL,
    CLOCK,
    ENGINE,
    IVR,
    JOURNAL,
    LIVE,
    NODE,
    PRESENCE,
    RECORDINGS,
    SETTINGS,
    WRITER,
)
from hotline.clock import Clock, SystemClock
from hotline.config.settings import Settings
from hotline.ivr.ari_channel import StasisApp
from hotline.ivr.fallback import FallbackSweeper
from hotline.ivr.inbound import JournalWriter
from hotline.ivr.journal_sql import SqlCallJournal
from hotline.privacy import mask_phone
from hotline.queue import http as queue_http
from hotline.queue.presence import MemoryPresence, RedisPresence
from hotline.state import LiveCall, LiveCalls, MemoryLiveCalls, RedisLiveCalls
from hotline.ticketing import http as tickets_http
from hotline.ticketing.users import authenticate

log = logging.getLogger(__name__)

CALENDAR_WARNING_DAYS = 60  # warn this long before the working calendar runs out
STATE_TIMEOUT = 0.5  # seconds a live call may wait on shared state before we go on without it


@dataclass(frozen=True, slots=True)
class Services:
    """What handlers need, resolved once at start-up."""

    node: str
    live: LiveCalls


def node_name(settings: Settings) -> str:
    return settings.server.node_id or f"{socket.gethostname()}-{os.getpid()}"


def tracked(handler: Handler, services: Services) -> Handler:
    """Register the session in shared state while it runs; shared state never blocks a call."""

    async def run(session: AGISession) -> None:
        live = LiveCall(
            call_id=session.call_id,
            node=services.node,
            script=session.script,
            caller=mask_phone(session.env.caller_number),
            started=time.time(),
        )
        await _best_effort(services.live.add(live), "register live call")
        try:
            await handler(session)
        finally:
            await _best_effort(services.live.remove(live.call_id), "unregister live call")

    return run


async def _best_effort(coro: object, what: str) -> None:
    try:
        await asyncio.wait_for(coro, STATE_TIMEOUT)  # type: ignore[arg-type]
    except Exception as exc:
        log.warning("shared state: could not %s: %s", what, exc)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = db.make_engine(settings.database.url)
    try:
        service = bootstrap.ticket_service(settings, engine, app[CLOCK])
        _warn_calendar_end(app, service.sla.calendar.data.years)
        await db.check_migrated(engine)
        app[ENGINE] = engine
        app[JOURNAL] = SqlCallJournal(engine)
        app[tickets_http.TICKETS_ENGINE] = engine
        app[tickets_http.SERVICE] = service
        app[edge.AUTH] = edge.Authenticator(
            lambda token: authenticate(engine, token),
            failures=settings.server.auth_max_failures,
            window=settings.server.auth_window,
            monotonic=app[CLOCK].monotonic,
        )
        yield
    finally:
        await engine.dispose()


def _warn_calendar_end(app: web.Application, years: frozenset[int]) -> None:
    covered = max(years, default=0)
    app[CALENDAR_UNTIL] = f"{covered}-12-31" if covered else ""
    soon = app[CLOCK].now() + dt.timedelta(days=CALENDAR_WARNING_DAYS)
    if soon.year > covered:
        log.warning(
            "the working calendar covers up to %s-12-31: add the next year's holidays and "
            "make-up days to city.calendar_file (HOTLINE_CITY_CALENDAR_FILE); deadlines beyond "
            "are recorded as unknown (rule C-2)",
            covered,
        )


async def _shared_state(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.redis.url:
        app[LIVE] = MemoryLiveCalls()
        app[PRESENCE] = MemoryPresence()
        yield
        return
    redis = Redis.from_url(settings.redis.url, decode_responses=True)
    try:
        await redis.ping()
        app[LIVE] = RedisLiveCalls(redis, settings.redis.key_prefix)
        app[PRESENCE] = RedisPresence(redis, settings.redis.key_prefix)
        heartbeat = asyncio.create_task(_heartbeat(app[LIVE], app[NODE]))
        yield
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    finally:
        await redis.aclose()


async def _heartbeat(live: LiveCalls, node: str) -> None:
    while True:
        await _best_effort(live.heartbeat(node), "beat the node heartbeat")
        await asyncio.sleep(10)


async def _ari(app: web.Application) -> AsyncIterator[None]:
    """ARI, when configured: voice messages are fetched from the switch through it, and the
    IVR also runs for calls that enter the Stasis application."""
    ari_settings = app[SETTINGS].ari
    client = None
    if ari_settings.url:
        client = AriClient(ari_settings.url, ari_settings.user, ari_settings.password)
        await client.__aenter__()
    app[IVR] = bootstrap.ivr_services(
        app[SETTINGS], app[tickets_http.SERVICE], app[PRESENCE], client
    )
    app[RECORDINGS] = app[IVR].recordings
    app[WRITER] = JournalWriter(app[JOURNAL])
    stasis = sweeper = None
    if client is not None:
        sweeper = asyncio.create_task(
            FallbackSweeper(client, app[tickets_http.SERVICE], ari_settings.recordings_dir).run()
        )
        handler = bootstrap.stasis_calls(app[SETTINGS], app[IVR], app[WRITER], app[CLOCK])
        stasis = StasisApp(client, ari_settings.app, handler)
        listener = asyncio.create_task(stasis.run())
    try:
        yield
    finally:
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        if stasis is not None:  # running calls finish while their events still arrive
            await stasis.close(app[SETTINGS].server.shutdown_grace)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await app[IVR].drain()  # voice messages still being registered, then fetched
        await app[WRITER].drain()
        await app[RECORDINGS].drain()
        if client is not None:
            await client.close()


async def _fastagi(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    services = Services(node=app[NODE], live=app[LIVE])
    router = Router()
    for path, handler in bootstrap.agi_scripts(settings, app[IVR], app[WRITER], app[CLOCK]).items():
        router.add(path, tracked(handler, services))
    server = FastAGIServer(
        router,
        host=settings.server.agi_host,
        port=settings.server.agi_port,
        idle_timeout=settings.server.agi_idle_timeout,
        max_connections=settings.server.agi_max_connections,
        allowed_peers=settings.server.agi_allowed_peers,
        secret=settings.server.agi_secret,
    )
    await server.start()
    app[AGI] = server
    yield
    await server.close(settings.server.shutdown_grace)


def build_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[NODE] = node_name(settings)
    app.cleanup_ctx.extend([_database, _shared_state, _ari, _fastagi])
    edge.setup(app)
    ops.setup(app)
    tickets_http.setup(app)
    queue_http.setup(app)
    return app


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully."""
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.server.http_host, settings.server.http_port)
        await site.start()
        log.info("HTTP on http://%s:%d", settings.server.http_host, settings.server.http_port)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("backend ready (node %s)", app[NODE])
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
