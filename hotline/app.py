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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline import bootstrap, db, ops, sms
from hotline import web as edge
from hotline.agi.ari import AriClient
from hotline.agi.fastagi import AGISession, FastAGIServer, Handler, Router
from hotline.appkeys import (
    AGI,
    BEATS,
    CALENDAR_UNTIL,
    CLOCK,
    CONSOLE_OUTBOX,
    ENGINE,
    HEALTH,
    IVR,
    JOURNAL,
    LIVE,
    MESSAGES_KEY,
    NODE,
    PRESENCE,
    QUEUE,
    RECORDINGS,
    REDIS,
    SETTINGS,
    WORKER,
    WRITER,
)
from hotline.background import Background
from hotline.callbacks import http as callbacks_http
from hotline.callbacks.dialer import Dialer, SurveyCalls
from hotline.callbacks.handlers import CallbackJobs
from hotline.clock import Clock, SystemClock
from hotline.config.settings import Settings
from hotline.errors import NotMigrated
from hotline.health import Dependencies
from hotline.ivr.ari_channel import StasisApp
from hotline.ivr.inbound import JournalWriter
from hotline.ivr.journal_sql import SqlCallJournal
from hotline.jobs import JobQueue, Worker, enqueue
from hotline.privacy import mask_phone
from hotline.queue import http as queue_http
from hotline.queue.acd import AcdConfig
from hotline.queue.calls import QueueCalls
from hotline.queue.conference import Conferences
from hotline.queue.conference import Result as ConferenceResult
from hotline.queue.log import Figures, QueueLog, figures_since, run_writer
from hotline.queue.presence import AcdPresence, DurablePresence, MemoryPresence, RedisPresence
from hotline.queue.service import QueueService
from hotline.queue.store import MemoryQueueStore, QueueStore, RedisQueueStore
from hotline.softphone_bridge import console as console_files
from hotline.softphone_bridge import ws as console_ws
from hotline.softphone_bridge.bridge import Bridge
from hotline.softphone_bridge.outbox import MemoryOutbox, RedisOutbox
from hotline.softphone_bridge.remote import RemoteControl
from hotline.state import (
    AppBeats,
    Epoch,
    LiveCall,
    LiveCalls,
    MemoryLiveCalls,
    NodeLiveCalls,
    RedisLiveCalls,
)
from hotline.ticketing import http as tickets_http
from hotline.ticketing.ticket import Leg, ThreeWayCall
from hotline.ticketing.users import authenticate, unit_names
from hotline.utility import directory
from hotline.utility import http as utility_http
from hotline.utility.recordings import TAKE_CONFERENCE_RECORDING, ConferenceRecordings

log = logging.getLogger(__name__)

SURVEY_CALLS = web.AppKey("survey_calls", SurveyCalls)
CALENDAR_WARNING_DAYS = 60  # warn this long before the working calendar runs out
STATE_TIMEOUT = 0.5  # seconds a live call may wait on shared state before we go on without it
PROBE_INTERVAL = 0.5  # seconds between probes of the database, Redis and ARI
PROBE_TIMEOUT = 1.0  # seconds a probe of Redis or ARI may take before it is down
DATABASE_PROBE_TIMEOUT = 0.5  # the database's: a freeze ends API requests within ~1 s
JOB_POLL = 1.0  # seconds between looks for due jobs (a local commit wakes the worker at once)
JOURNAL_FLUSH = 30.0  # seconds between flushes of the journal spool
QUEUE_LOG_RETRY = 1.0  # seconds between writes of the queue log while the database is away


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
    """The engine (every wait bounded by ``database.timeout``), the ticketing service and the
    watch on the dependencies. A database that cannot be reached does not stop the start: the
    backend serves degraded and catches up when it is back; one that answers but is behind
    the migrations does (exit 2)."""
    settings = app[SETTINGS]
    bound = settings.database.timeout
    engine = db.make_engine(settings.database.url, timeout=bound)
    health = Dependencies(app[CLOCK], interval=PROBE_INTERVAL, timeout=PROBE_TIMEOUT)
    app[HEALTH] = health
    try:
        service = bootstrap.ticket_service(settings, engine, app[CLOCK])
        _warn_calendar_end(app, service.sla.calendar.data.years)
        migrated = await _first_check(engine, bound)

        async def probe() -> None:
            nonlocal migrated
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            if not migrated:  # first seen now: it must be at the code's revision
                await db.check_migrated(engine)
                migrated = True

        health.add("database", probe, timeout=min(DATABASE_PROBE_TIMEOUT, bound))
        app[ENGINE] = engine
        app[JOURNAL] = SqlCallJournal(engine)
        app[tickets_http.TICKETS_ENGINE] = engine
        app[tickets_http.SERVICE] = service
        app[callbacks_http.CAMPAIGNS] = bootstrap.campaigns(settings, engine, app[CLOCK])
        app[edge.AUTH] = edge.Authenticator(
            lambda token: authenticate(engine, token),
            failures=settings.server.auth_max_failures,
            window=settings.server.auth_window,
            monotonic=app[CLOCK].monotonic,
        )
        yield
    finally:
        await health.close()
        await engine.dispose()


async def _first_check(engine: AsyncEngine, bound: float) -> bool:
    """At start: is the database there and migrated? Raises NotMigrated when it is behind."""
    try:
        async with asyncio.timeout(bound * 2):
            await db.check_migrated(engine)
    except NotMigrated:
        raise
    except Exception as exc:
        log.error(
            "database unavailable at start (%s): serving degraded — calls go to the safe path "
            "or leave voice messages on the switch; catching up when it is back",
            type(exc).__name__,
        )
        return False
    return True


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
    """Live calls and agents on duty: in memory, or in Redis for several nodes. Redis may be
    down at start and may restart empty: agents' log-ins are kept in the database and this
    node's live calls in memory, and both are published again when Redis is back (or found
    reset)."""
    settings = app[SETTINGS]
    bound = settings.redis.timeout
    app[BEATS] = None
    app[REDIS] = None
    if not settings.redis.url:
        app[QUEUE] = queue_service(settings, app[ENGINE], app[CLOCK], app[NODE])
        app[LIVE] = MemoryLiveCalls()
        durable = DurablePresence(app[ENGINE], MemoryPresence(), app[CLOCK], bound)
        app[PRESENCE] = AcdPresence(app[QUEUE], durable)
        app[CONSOLE_OUTBOX] = MemoryOutbox()
        yield
        return
    redis = Redis.from_url(
        settings.redis.url,
        decode_responses=True,
        socket_timeout=bound,
        socket_connect_timeout=bound,
        retry_on_timeout=False,
    )
    prefix = settings.redis.key_prefix
    app[REDIS] = redis
    shared = redis if settings.queue.store == "redis" else None
    app[QUEUE] = queue_service(settings, app[ENGINE], app[CLOCK], app[NODE], shared, prefix)
    try:
        live = NodeLiveCalls(RedisLiveCalls(redis, prefix), STATE_TIMEOUT)
        presence = DurablePresence(app[ENGINE], RedisPresence(redis, prefix), app[CLOCK], bound)
        app[LIVE], app[PRESENCE] = live, AcdPresence(app[QUEUE], presence)
        app[BEATS] = AppBeats(redis, prefix)
        epoch = Epoch(redis, prefix)
        health = app[HEALTH]
        health.add("redis", epoch.check)  # True: Redis restarted empty
        health.when_up("redis", presence.restore)
        health.when_up("redis", live.restore)
        heartbeat = asyncio.create_task(_heartbeat(live, app[NODE], app[CLOCK]))
        outbox = RedisOutbox(redis, prefix)  # consoles hear every node, resume on any
        app[CONSOLE_OUTBOX] = outbox
        hearing = asyncio.create_task(outbox.run())
        yield
        for task in (heartbeat, hearing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await redis.aclose()


def queue_service(
    settings: Settings,
    engine: AsyncEngine,
    clock: Clock,
    node: str,
    redis: Redis | None = None,
    prefix: str = "",
) -> QueueService:
    """The ACD: its state in this process, or in Redis (``queue.store = "redis"``)."""
    q = settings.queue
    config = AcdConfig(
        min_proficiency=q.min_proficiency,
        widen_after=q.widen_after,
        widen_all_after=max(q.widen_after, q.widen_all_after),
        ring_timeout=q.ring_timeout,
        max_misses=q.max_misses,
        wrap_up_seconds=q.wrap_up_seconds,
    )
    store: QueueStore = (
        MemoryQueueStore(config) if redis is None else RedisQueueStore(redis, prefix, config)
    )
    return QueueService(store, QueueLog(engine, clock, node), clock, node)


async def _heartbeat(live: LiveCalls, node: str, clock: Clock) -> None:
    while True:
        await _best_effort(live.heartbeat(node), "beat the node heartbeat")
        await clock.sleep(10)


async def _ari(app: web.Application) -> AsyncIterator[None]:
    """ARI, when configured: voice messages are taken in from the switch through it, and the
    IVR also runs for calls that enter the Stasis application."""
    settings = app[SETTINGS]
    ari_settings = settings.ari
    service = app[tickets_http.SERVICE]
    client = None
    if ari_settings.url:
        client = AriClient(
            ari_settings.url,
            ari_settings.user,
            ari_settings.password,
            max_connections=ari_settings.max_connections,
        )
        await client.__aenter__()
    app[IVR] = bootstrap.ivr_services(settings, service, app[PRESENCE])
    health = app[HEALTH]
    app[IVR].database_down = lambda: health.down("database")
    app[RECORDINGS] = app[IVR].recordings
    app[WRITER] = JournalWriter(app[JOURNAL], spool=settings.server.spool_dir / "journal")
    app[MESSAGES_KEY] = None
    app[utility_http.CONFERENCE_RECORDINGS] = None
    callback = settings.callback
    app[SURVEY_CALLS] = SurveyCalls(None, "")
    stasis = None
    if client is not None:
        ari = client
        app[MESSAGES_KEY] = bootstrap.switch_messages(settings, service, ari)
        app[utility_http.CONFERENCE_RECORDINGS] = ConferenceRecordings(
            ari, app[IVR].recordings, service
        )
        app[IVR].switch = ari

        async def ping() -> None:
            await ari.get("/asterisk/ping")

        app[HEALTH].add("ari", ping)
        handler = bootstrap.stasis_calls(settings, app[IVR], app[WRITER], app[CLOCK])
        # one Stasis application per node: calls are broadcast to the family and claimed
        family = f"{ari_settings.app}-"
        mine = family + app[NODE]
        beats = app[BEATS]
        queue_calls = QueueCalls(client, mine, app[QUEUE], settings.queue, app[CLOCK])
        surveys = SurveyCalls(  # the satisfaction callbacks' calls (rule B-1)
            client,
            mine,
            endpoint=callback.endpoint,
            caller_id=callback.caller_id,
            ring_timeout=callback.ring_timeout,
            key_timeout=callback.key_timeout,
            call_seconds=callback.call_seconds,
            reason_seconds=callback.reason_seconds,
        )
        app[SURVEY_CALLS] = surveys
        stasis = StasisApp(
            client,
            mine,
            handler,
            {**queue_calls.roles(), **surveys.roles()},
            dead_man=settings.queue.dead_man_seconds,
            family=family,
            peers=None if beats is None else beats.alive,
        )
        queue_calls.bind(stasis)
        queue_calls.ringing.append(app[console_ws.BRIDGE].ringing)  # the agents' screen pops
        queue_calls.conferences = Conferences(  # the utility three-way call (rule H-6)
            queue_calls,
            app[utility_http.DIRECTORY],
            ring_timeout=settings.utility.ring_timeout,
            caller_id=settings.utility.caller_id,
        )
        queue_calls.conferences.results.append(app[console_ws.BRIDGE].utility_result)
        queue_calls.conferences.results.append(_on_the_ticket(app))
        queue_calls.conferences.recorded.append(_recording_taken(app))
        app[console_ws.BRIDGE].ari = client
        app[console_ws.BRIDGE].calls = queue_calls
        shared = app[REDIS]
        if shared is not None:  # a console on one node, its caller run by another
            remote = RemoteControl(shared, settings.redis.key_prefix, app[NODE], queue_calls)
            app[console_ws.BRIDGE].remote = remote
        listener = asyncio.create_task(stasis.run())
        helpers = Background("ari")
        helpers.submit(stasis.watch_peers(), "stopped nodes' callers")
        helpers.submit(queue_calls.run_sync(), "queue sync")
        if beats is not None:
            helpers.submit(beats.run(mine), "node beat")
        others = app[console_ws.BRIDGE].remote
        if others is not None:
            helpers.submit(others.run(), "call control for other nodes")
    try:
        yield
    finally:
        if stasis is not None:  # running calls finish while their events still arrive
            await helpers.close()
            await stasis.close(settings.server.shutdown_grace)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await _bounded_drain(app[WRITER], settings.database.timeout)
        await app[IVR].background.close(settings.server.shutdown_grace)
        if client is not None:
            await client.close()


def _recording_taken(app: web.Application) -> Callable[[str, str], None]:
    """A three-way call's recording is done: a durable job takes it to the ticket."""

    def taken(call_id: str, name: str) -> None:
        async def enqueue_it() -> None:
            now = app[CLOCK].now()
            payload = {"call_id": call_id, "name": name}
            try:
                async with app[ENGINE].begin() as conn:
                    await enqueue(conn, TAKE_CONFERENCE_RECORDING, name, payload, now, now=now)
            except Exception as exc:  # the database is away: the recording stays on the switch
                log.warning("utility: the recording of %s is not queued (%s)", call_id, exc)
                return
            worker = app.get(WORKER)
            if worker is not None:
                worker.poke()

        app[QUEUE].background.submit(enqueue_it(), f"recording of {call_id}")

    return taken


def _on_the_ticket(app: web.Application) -> Callable[[str, ConferenceResult], None]:
    """A three-way call's outcome onto the ticket registered on the call (rule H-6)."""
    service, directory, clock = app[tickets_http.SERVICE], app[utility_http.DIRECTORY], app[CLOCK]

    def record(agent: str, result: ConferenceResult) -> None:
        utility = directory.utilities.get(result.utility)
        if utility is None:
            return
        legs = [Leg(a.number, a.outcome, a.seconds) for a in result.attempts]
        call = ThreeWayCall(
            result.call_id, result.utility, utility.unit, result.connected, legs, clock.now()
        )

        async def put() -> None:
            try:
                if await service.three_way_call(call) is None:
                    log.info("utility: no ticket on %s yet; the queue log has it", call.call_id)
            except Exception as exc:  # the database is away: the queue log keeps the legs
                log.warning("utility: %s not put on its ticket (%s)", call.call_id, exc)

        app[QUEUE].background.submit(put(), f"ticket of {result.call_id}")

    return record


async def _console(app: web.Application) -> AsyncIterator[None]:
    """The agents' consoles: their sessions, pops and commands (the softphone bridge)."""
    settings, service, engine = app[SETTINGS], app[tickets_http.SERVICE], app[ENGINE]

    async def names() -> dict[str, str]:
        return await unit_names(engine)

    async def today() -> Figures:  # the city's day
        local = app[CLOCK].now().astimezone(ZoneInfo(settings.city.timezone))
        return await figures_since(engine, local.replace(hour=0, minute=0, second=0, microsecond=0))

    app[console_ws.BRIDGE] = Bridge(
        app[QUEUE],
        app[PRESENCE],
        app[CONSOLE_OUTBOX],
        app[CLOCK],
        pop_source=service.screen_pop,
        unit_names=names,
        routing=settings.routing.categories,
        wrap_up_seconds=settings.queue.wrap_up_seconds,
        today=today,
    )
    pushing = asyncio.create_task(app[console_ws.BRIDGE].run())
    try:
        yield
    finally:
        pushing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pushing
        await app[console_ws.BRIDGE].close()


async def _bounded_drain(writer: JournalWriter, bound: float) -> None:
    """Journal rows still being written get a moment; what is left stays in the spool."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(bound * 2):
            await writer.drain()
    await writer.background.close()
    writer.close()


async def _periodic(
    clock: Clock, interval: float, what: str, work: Callable[[], Awaitable[object]]
) -> None:
    while True:
        try:
            await work()
        except Exception as exc:  # the database or the switch is away: next time
            log.warning("%s failed (%s); again in %.0f s", what, type(exc).__name__, interval)
        await clock.sleep(interval)


async def _background(app: web.Application) -> AsyncIterator[None]:
    """What runs beside the calls: the dependency watch, the durable jobs, the sweep of voice
    messages left on the switch, the journal spool's flush."""
    settings, clock, health = app[SETTINGS], app[CLOCK], app[HEALTH]
    service, writer, messages = app[tickets_http.SERVICE], app[WRITER], app[MESSAGES_KEY]
    texts = sms.gateway(settings.watch.sms, settings.watch.sms_url, settings.watch.sms_timeout)
    worker = Worker(
        JobQueue(app[ENGINE], clock, app[NODE]),
        bootstrap.job_handlers(
            messages,
            service,
            push=app[CONSOLE_OUTBOX].publish,
            sms=texts,
            conference_recordings=app[utility_http.CONFERENCE_RECORDINGS],
            callbacks=CallbackJobs(
                app[callbacks_http.CAMPAIGNS],
                service,
                texts,
                evaluate_url=settings.callback.evaluate_url,
                timezone=settings.city.timezone,
                recordings=app[utility_http.CONFERENCE_RECORDINGS],
                delivers=settings.watch.sms == "http",  # "log" reaches no citizen
            ),
        ),
        poll=JOB_POLL,
    )
    campaigns = app[callbacks_http.CAMPAIGNS]
    dialer = Dialer(
        campaigns,
        app[SURVEY_CALLS],
        service.callback_contact,
        clock,
        app[NODE],
        poll=settings.callback.poll,
    )
    campaigns.on_change.extend([worker.poke, dialer.poke])
    if service.outbox is not None:
        service.outbox.on_commit = worker.poke
    if service.watch is not None:
        service.watch.on_commit = worker.poke
    health.when_up("database", writer.flush)
    tasks = Background("background")
    await health.probe_all()  # /readyz knows where it stands from the first request on
    tasks.submit(health.run(), "dependency watch")
    tasks.submit(worker.run(), "jobs")
    tasks.submit(dialer.run(), "satisfaction callbacks")
    tasks.submit(_periodic(clock, JOURNAL_FLUSH, "journal spool", writer.flush), "journal spool")
    queue, presence = app[QUEUE], app[PRESENCE]
    if isinstance(presence, AcdPresence):  # agents on duty before a restart are back
        health.when_up("database", presence.restore)
        if not health.down("database"):
            tasks.submit(_best_effort(presence.restore(), "restore agents"), "restore agents")
    tasks.submit(queue.run(), "queue timers")
    tasks.submit(run_writer(queue.log, QUEUE_LOG_RETRY), "queue log")
    if messages is not None:
        health.when_up("database", messages.sweep)
        tasks.submit(
            _periodic(clock, settings.ari.sweep_interval, "voice-message sweep", messages.sweep),
            "voice-message sweep",
        )
    app[WORKER] = worker
    try:
        yield
    finally:
        await tasks.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(settings.database.timeout * 2):
                await queue.log.flush()
        await queue.close()
        if isinstance(texts, sms.HttpSms):
            await texts.close()


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
    app = web.Application(client_max_size=edge.MAX_BODY_BYTES)  # chunked bodies too
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[NODE] = node_name(settings)
    app.cleanup_ctx.extend([_database, _shared_state, _console, _ari, _background, _fastagi])
    edge.setup(app)
    ops.setup(app)
    tickets_http.setup(app)
    queue_http.setup(app)
    utility_http.setup(app, directory.load(settings.utility.directory_file, settings.city.timezone))
    callbacks_http.setup(app)
    more: list[queue_http.MoreMetrics] = [callbacks_http.metrics_text]
    app[queue_http.MORE_METRICS] = more
    console_ws.setup(app)
    console_files.setup(app)
    return app


async def serve(
    settings: Settings, stop: asyncio.Event | None = None, exit_when_stuck: bool = False
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully — within
    ``server.shutdown_grace`` + 20 s; past it, what is stuck is logged and, with
    ``exit_when_stuck`` (the command), the process exits with status 1."""
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
        bound = settings.server.shutdown_grace + SHUTDOWN_SLACK
        if not await _bounded_cleanup(runner, bound) and exit_when_stuck:
            logging.shutdown()
            os._exit(1)  # asyncio.run would wait for ever on a task that will not end


SHUTDOWN_SLACK = 20.0  # seconds a shutdown may take beyond the calls' grace


def _awaiting(task: asyncio.Task[Any]) -> str:
    """Where a task waits: its chain of awaits, outermost first."""
    lines: list[str] = []
    step: Any = task.get_coro()
    while step is not None and len(lines) < 50:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is None:
            lines.append(f"\n  {type(step).__name__}")
            break
        lines.append(f"\n  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return "".join(lines)


async def _bounded_cleanup(runner: web.AppRunner, bound: float) -> bool:
    """Shut down within ``bound`` seconds (True); past it, what is still running is logged
    with its stack (False)."""
    try:
        async with asyncio.timeout(bound):
            await runner.cleanup()
        return True
    except TimeoutError:
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                log.error("shutdown stuck on %s:%s", task.get_name(), _awaiting(task))
        log.error("the shutdown took over %.0f s", bound)
        return False
