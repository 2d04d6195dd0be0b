"""One bootstrap: the services, built from settings, for every way the backend runs.

``hotline serve`` (:mod:`hotline.app`, which adds the lifecycles), the CLI and process AGI
(:mod:`hotline.process_agi`) all build the ticketing service and the IVR here, so the three
cannot drift apart (after cosmicpython's ``bootstrap.py``). Nothing here opens a connection:
engines and clients are passed in by whoever owns their lifecycle.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.agi.ari import AriPort
from hotline.agi.fastagi import Handler
from hotline.callbacks.handlers import CallbackJobs
from hotline.callbacks.plan import CallWindow, Campaign
from hotline.callbacks.store import DECIDE, EVALUATION_MESSAGE, START, Campaigns
from hotline.clock import Clock
from hotline.config.settings import Settings
from hotline.ivr.ari_channel import CallHandler
from hotline.ivr.fallback import SwitchMessages, fallback_key
from hotline.ivr.inbound import JournalWriter, ivr_config, scripts, stasis_handler
from hotline.ivr.services import BackendIvrServices, Recordings
from hotline.jobs import Handler as JobHandler
from hotline.jobs import Job, Outbox
from hotline.queue.presence import AgentPresence
from hotline.ticketing.calendar import WorkingCalendar
from hotline.ticketing.notices import SEND_SMS, Notifier, Push, SmsGateway
from hotline.ticketing.service import CALLBACK_DUE, VOICE_MESSAGE_LEFT, TicketService
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.sla_watch import TIMER, SlaWatch, SmsSender, TimerSync
from hotline.utility.recordings import TAKE_CONFERENCE_RECORDING, ConferenceRecordings

TAKE_VOICE_MESSAGE = "voice_message.take"
# Which durable handlers each domain event goes to — the one place they are registered (the
# handlers themselves: job_handlers below). The reminders, the emergency plan's clocks and the
# callbacks of the later issues register here.
EVENT_ROUTES: dict[str, tuple[str, ...]] = {
    VOICE_MESSAGE_LEFT: (TAKE_VOICE_MESSAGE,),
    CALLBACK_DUE: (START,),  # rule B-1: the satisfaction callback's campaign
}


def sla_engine(settings: Settings) -> SlaEngine:
    """Deadlines as configured: the working calendar (rule C-2; a broken calendar file stops
    here) and the rule table."""
    calendar = WorkingCalendar.from_settings(
        settings.city.timezone, settings.city.office_hours, settings.city.calendar_file
    )
    return SlaEngine(calendar, settings.rules)


def ticket_service(settings: Settings, engine: AsyncEngine, clock: Clock) -> TicketService:
    """The service as configured: deadlines, time zone, routing table, the outbox its changes
    write their follow-up jobs to, and the SLA timers they keep in step (``[watch]``)."""
    sla = sla_engine(settings)
    return TicketService(
        engine,
        sla,
        clock,
        settings.city.timezone,
        settings.routing.categories,
        outbox=Outbox(EVENT_ROUTES, clock),
        watch=TimerSync(
            settings.watch, sla.calendar, clock, multi_days=settings.rules.assign_multi_days
        ),
    )


def callback_campaign(settings: Settings) -> Campaign:
    """The campaign's policy as configured (``[callback]``)."""
    c = settings.callback
    start, _, end = c.window.partition("-")
    close = dt.time.max if end == "24:00" else dt.time.fromisoformat(end)
    window = CallWindow(
        dt.time.fromisoformat(start),
        close,
        frozenset(int(d) for d in c.days),
        settings.city.timezone,
    )
    spacing = {k: dt.timedelta(seconds=float(v)) for k, v in c.spacing.items()}
    return Campaign(
        window,
        c.attempts,
        spacing,
        dt.timedelta(seconds=c.call_seconds),
        dt.timedelta(hours=c.evaluation_hours),
    )


def campaigns(settings: Settings, engine: AsyncEngine, clock: Clock) -> Campaigns:
    c = settings.callback
    # past any call's end (the dialer gives up on a call at ring + call + 30 s)
    lease = dt.timedelta(seconds=c.ring_timeout + c.call_seconds + 120)
    return Campaigns(
        engine,
        callback_campaign(settings),
        clock,
        cap=c.max_calls,
        lease=lease,
        unreached=c.unreached,
    )


def ivr_services(
    settings: Settings, tickets: TicketService, presence: AgentPresence
) -> BackendIvrServices:
    """What the IVR flows see of the backend, each answer bounded by ``ivr.backend_timeout``."""
    return BackendIvrServices(
        tickets,
        presence,
        Recordings(settings.ari.recordings_dir),
        key=fallback_key(settings.ari.password),
        timeout=settings.ivr.backend_timeout,
        clock=tickets.clock,
    )


def switch_messages(settings: Settings, tickets: TicketService, ari: AriPort) -> SwitchMessages:
    return SwitchMessages(
        ari, tickets, settings.ari.recordings_dir, key=fallback_key(settings.ari.password)
    )


def job_handlers(
    messages: SwitchMessages | None,
    tickets: TicketService | None = None,
    *,
    push: Push | None = None,
    sms: SmsGateway | None = None,
    conference_recordings: ConferenceRecordings | None = None,
    callbacks: CallbackJobs | None = None,
) -> dict[str, JobHandler]:
    """The durable jobs this node runs, by kind: voice messages taken from the switch, the SLA
    watch's timers (``push``: the console socket), and the SMS the emergency plan sends."""
    handlers: dict[str, JobHandler] = {}
    if callbacks is not None:
        handlers[START] = callbacks.start
        handlers[DECIDE] = callbacks.decide
        handlers[EVALUATION_MESSAGE] = callbacks.message
    if conference_recordings is not None:
        handlers[TAKE_CONFERENCE_RECORDING] = conference_recordings.take
    if tickets is not None and tickets.watch is not None:
        handlers[TIMER] = SlaWatch(tickets, Notifier(push)).fire
        if sms is not None:
            handlers[SEND_SMS] = SmsSender(tickets.engine, sms).send
    if messages is not None:

        async def take(job: Job) -> None:
            await messages.take_stored(str(job.payload["stored"]))

        handlers[TAKE_VOICE_MESSAGE] = take
    return handlers


def agi_scripts(
    settings: Settings, services: BackendIvrServices, writer: JournalWriter, clock: Clock
) -> dict[str, Handler]:
    """The AGI scripts by path (FastAGI and process AGI alike)."""
    return scripts(settings, services, writer, clock.now)


def stasis_calls(
    settings: Settings, services: BackendIvrServices, writer: JournalWriter, clock: Clock
) -> CallHandler:
    """The handler for calls entering the Stasis application (the same flows over ARI)."""
    return stasis_handler(ivr_config(settings), services, writer, clock.now)
