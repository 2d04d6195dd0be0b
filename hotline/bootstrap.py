"""One bootstrap: the services, built from settings, for every way the backend runs.

``hotline serve`` (:mod:`hotline.app`, which adds the lifecycles), the CLI and process AGI
(:mod:`hotline.process_agi`) all build the ticketing service and the IVR here, so the three
cannot drift apart (after cosmicpython's ``bootstrap.py``). Nothing here opens a connection:
engines and clients are passed in by whoever owns their lifecycle.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.agi.ari import AriClient
from hotline.agi.fastagi import Handler
from hotline.clock import Clock
from hotline.config.settings import Settings
from hotline.ivr.ari_channel import CallHandler
from hotline.ivr.inbound import JournalWriter, ivr_config, scripts, stasis_handler
from hotline.ivr.services import BackendIvrServices, RecordingFetcher
from hotline.queue.presence import AgentPresence
from hotline.ticketing.calendar import WorkingCalendar
from hotline.ticketing.service import TicketService
from hotline.ticketing.sla import SlaEngine


def sla_engine(settings: Settings) -> SlaEngine:
    """Deadlines as configured: the working calendar (rule C-2; a broken calendar file stops
    here) and the rule table."""
    calendar = WorkingCalendar.from_settings(
        settings.city.timezone, settings.city.office_hours, settings.city.calendar_file
    )
    return SlaEngine(calendar, settings.rules)


def ticket_service(settings: Settings, engine: AsyncEngine, clock: Clock) -> TicketService:
    """The service as configured: deadlines, time zone, routing table."""
    return TicketService(
        engine,
        sla_engine(settings),
        clock,
        settings.city.timezone,
        settings.routing.categories,
    )


def ivr_services(
    settings: Settings,
    tickets: TicketService,
    presence: AgentPresence,
    ari: AriClient | None,
) -> BackendIvrServices:
    """What the IVR flows see of the backend; voice messages are fetched over ``ari``."""
    fetcher = RecordingFetcher(ari, settings.ari.recordings_dir, clock=tickets.clock)
    return BackendIvrServices(tickets, presence, fetcher, clock=tickets.clock)


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
