"""The IVR's view of the backend: tickets for self-service, agents, voice messages — every
answer bounded in time while a caller waits on it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hotline.agi.ari import AriPort, stored_recording
from hotline.background import Background
from hotline.clock import Clock, SystemClock
from hotline.db import database_down
from hotline.errors import AriError, DatabaseUnavailable
from hotline.ivr.fallback import parse, seal
from hotline.ivr.flows import TicketInfo
from hotline.ivr.journal import CallRecord
from hotline.ivr.port import Recording
from hotline.queue.presence import AgentPresence
from hotline.ticketing.model import TicketType
from hotline.ticketing.repository import UnitOfWork
from hotline.ticketing.service import TicketService
from hotline.ticketing.ticket import Ticket

log = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,120}")
T = TypeVar("T")
SHARED_AWAY_SECONDS = 5.0  # after shared state failed a caller, others do not wait on it


def ticket_info(ticket: Ticket) -> TicketInfo:
    """State, handling unit and due date — what a caller may hear (nothing of an internal
    transfer's unit, rule T-5)."""
    if ticket.internal is not None:
        return TicketInfo(ticket.number, ticket.state.value, None, None)
    live = ticket.live_assignments()
    lead = next((a for a in live if a.lead), live[0] if live else None)
    return TicketInfo(
        ticket.number,
        ticket.state.value,
        lead.unit_id if lead else None,
        lead.handle.due if lead else None,
    )


class Recordings:
    """Where voice messages taken in from the switch are kept (and served from)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        if not SAFE_NAME.fullmatch(name):
            raise ValueError(f"not a recording name: {name!r}")
        return self.folder / f"{name}.wav"


class BackendIvrServices:
    """The backend as the IVR sees it, every call bounded by ``timeout`` seconds while the
    caller is on the line: past it the flow goes on without the answer (the menu without the
    repeat-caller offer, the operator for progress, the message left on the switch)."""

    def __init__(
        self,
        service: TicketService,
        presence: AgentPresence,
        recordings: Recordings,
        *,
        key: str,
        timeout: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.presence = presence
        self.recordings = recordings
        self.key = key  # seals who left a message into its name on the switch
        self.timeout = timeout
        self.clock = clock or SystemClock()
        # set by the application from its dependency watch: a database known to be down is
        # not waited on at all
        self.database_down: Callable[[], bool] = lambda: False
        self._shared_away_until = 0.0  # monotonic: shared state failed, do not wait on it
        self.switch: AriPort | None = None  # set by the application when ARI is configured
        self.background = Background("empty voice messages")

    async def _bounded(self, what: str, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await work
        except TimeoutError:
            raise DatabaseUnavailable(f"{what}: no answer within {self.timeout:g} s") from None
        except Exception as exc:
            if database_down(exc):
                raise DatabaseUnavailable(f"{what}: {type(exc).__name__}") from exc
            raise

    async def _from_database(self, what: str, work: Coroutine[Any, Any, T]) -> T:
        if self.database_down():
            work.close()
            raise DatabaseUnavailable(f"{what}: the database is down")
        return await self._bounded(what, work)

    async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]:
        async def look() -> list[Ticket]:
            async with UnitOfWork(self.service.engine) as uow:
                return await uow.queries.caller_open_tickets(phone, since, limit=5)

        return [ticket_info(t) for t in await self._from_database("open tickets", look())]

    async def ticket(self, number: str) -> TicketInfo | None:
        async def look() -> Ticket | None:
            async with UnitOfWork(self.service.engine) as uow:
                return await uow.queries.by_number(number)

        found = await self._from_database("ticket by number", look())
        return ticket_info(found) if found is not None else None

    async def agents_available(self) -> int:
        """How many agents are on duty; when shared state cannot tell in time, 1 — the caller
        goes on to the queue's hand-off (which knows), not to a voice message or the operator."""
        if self.clock.monotonic() < self._shared_away_until:
            return 1
        try:
            return await self._bounded("agents on duty", self.presence.available())
        except Exception as exc:
            self._shared_away_until = self.clock.monotonic() + SHARED_AWAY_SECONDS
            log.warning("agents on duty unknown (%s); on to the queue", type(exc).__name__)
            return 1

    async def estimated_wait(self, priority: int) -> float:
        if self.clock.monotonic() < self._shared_away_until:
            return 0.0  # one wait per call on a part that is away, not one per question
        try:
            return await self._bounded("estimated wait", self.presence.estimated_wait(priority))
        except Exception as exc:
            self._shared_away_until = self.clock.monotonic() + SHARED_AWAY_SECONDS
            log.warning("estimated wait unknown (%s); taken as none", type(exc).__name__)
            return 0.0

    def message_name(self, call: CallRecord, request_type: str) -> str:
        return seal(self.key, call.call_id, call.caller, request_type)

    def discard_message(self, recording: Recording) -> None:
        switch = self.switch
        if switch is None:
            return

        async def delete() -> None:
            try:
                await switch.delete(stored_recording(recording.name))
            except AriError as exc:
                if exc.status != 404:
                    raise

        self.background.submit(delete(), "delete an empty voice message")

    async def voice_message(self, call: CallRecord, recording: Recording, request_type: str) -> str:
        """The message becomes a ticket now when the database answers in time; the recording
        is then taken in from the switch by a durable job that commits with the ticket. If the
        database fails or is slow, the message stays on the switch, under a name that says
        whose it is, and the sweeper makes the ticket once the database is back."""
        message = parse(recording.name, self.key)
        if message is None:
            log.error("call %s: voice message under a name of no known form", call.call_id)
            return ""
        try:
            ticket = await self._from_database(
                "voice message",
                self.service.register_voice_message(
                    call.call_id,
                    call.caller,
                    message.name,
                    recording.seconds,
                    TicketType(request_type),
                    stored=recording.name,
                ),
            )
        except Exception as exc:
            log.error(
                "call %s: voice message not registered now (%s); it stays on the switch and is "
                "swept in once the database answers",
                call.call_id,
                type(exc).__name__,
            )
            return ""
        return ticket.number
