"""The IVR's view of the backend: tickets for self-service, agents, voice messages."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from hotline.agi.ari import AriClient, stored_recording
from hotline.background import Background, backoff, retry
from hotline.clock import Clock, SystemClock
from hotline.errors import AriError
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


class RecordingFetcher:
    """Copies voice messages from the switch (ARI stored recordings) into our own storage,
    after the call, with retries: a message is not left only on the switch."""

    def __init__(
        self, ari: AriClient | None, folder: Path, attempts: int = 5, clock: Clock | None = None
    ) -> None:
        self.ari = ari
        self.folder = folder
        self.attempts = attempts
        self.clock = clock or SystemClock()
        self.background = Background("recording fetcher")

    def path(self, name: str) -> Path:
        if not SAFE_NAME.fullmatch(name):
            raise ValueError(f"not a recording name: {name!r}")
        return self.folder / f"{name}.wav"

    def fetch_later(self, name: str) -> None:
        self.background.submit(self._fetch(name), f"fetch {name}")

    async def _fetch(self, name: str) -> None:
        ari = self.ari
        if ari is None:
            log.warning("voice message %s stays on the switch: no ARI configured (ari.url)", name)
            return

        async def download() -> bytes:
            return await ari.download(stored_recording(name) + "/file")

        try:
            audio = await retry(
                download,
                backoff(0.5, self.attempts - 1),
                what=f"voice message {name}: fetch",
                clock=self.clock,
                retry_on=(AriError, OSError),
                detail=True,
            )
        except (AriError, OSError):
            log.error("voice message %s could not be fetched; it is still on the switch", name)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path(name).with_suffix(".part")
        tmp.write_bytes(audio)
        tmp.replace(self.path(name))
        log.info("voice message %s stored (%d bytes)", name, len(audio))

    async def drain(self) -> None:
        await self.background.drain()


class BackendIvrServices:
    def __init__(
        self,
        service: TicketService,
        presence: AgentPresence,
        recordings: RecordingFetcher,
        retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0),
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.presence = presence
        self.recordings = recordings
        self.retry_delays = retry_delays
        self.clock = clock or SystemClock()
        self.background = Background("voice messages")

    async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]:
        async with UnitOfWork(self.service.engine) as uow:
            found = await uow.queries.caller_open_tickets(phone, since, limit=5)
        return [ticket_info(t) for t in found]

    async def ticket(self, number: str) -> TicketInfo | None:
        async with UnitOfWork(self.service.engine) as uow:
            found = await uow.queries.by_number(number)
        return ticket_info(found) if found is not None else None

    async def agents_available(self) -> int:
        return await self.presence.available()

    async def estimated_wait(self, priority: int) -> float:
        return await self.presence.estimated_wait(priority)

    async def voice_message(self, call: CallRecord, recording: Recording, request_type: str) -> str:
        """The message becomes a ticket now or, if the database fails, a little later: the
        registration is retried in the background (it is idempotent on the call id)."""

        async def register() -> str:
            ticket = await self.service.register_voice_message(
                call.call_id,
                call.caller,
                recording.name,
                recording.seconds,
                TicketType(request_type),
            )
            self.recordings.fetch_later(recording.name)
            return ticket.number

        try:
            return await register()
        except Exception:
            log.error(
                "call %s: voice message %s not registered; retrying in the background",
                call.call_id,
                recording.name,
                exc_info=True,
            )
        self.background.submit(self._retry(register, call, recording), f"register {call.call_id}")
        return ""

    async def _retry(
        self, register: Callable[[], Awaitable[str]], call: CallRecord, recording: Recording
    ) -> None:
        first, *later = self.retry_delays or (0.0,)
        await self.clock.sleep(first)
        try:
            number = await retry(
                register,
                later,
                what=f"call {call.call_id}: voice message {recording.name}, registration",
                clock=self.clock,
            )
        except Exception:
            log.error(
                "call %s: voice message %s was NOT registered; recover it from the switch",
                call.call_id,
                recording.name,
            )
            return
        log.info("call %s: voice message %s registered as %s", call.call_id, recording.name, number)

    async def drain(self) -> None:
        """Wait for registrations still being retried (shutdown)."""
        await self.background.drain()
