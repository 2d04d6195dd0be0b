"""A three-way call's recording onto its ticket (rule H-6): the durable job that takes the
recording off the switch, keeps it beside the voice messages (served to the office only, every
listen on record, rule Y-1) and attaches it to the ticket registered on the call."""

from __future__ import annotations

import logging

from hotline.agi.ari import AriPort, stored_recording
from hotline.errors import AriError
from hotline.ivr.fallback import wav_seconds
from hotline.ivr.services import Recordings
from hotline.jobs import Job
from hotline.ticketing.service import TicketService

log = logging.getLogger(__name__)

TAKE_CONFERENCE_RECORDING = "recording.conference"


class NoTicketYet(LookupError):
    """No ticket is registered on the call yet: the job tries again (the agent may register
    it during the wrap-up)."""


class ConferenceRecordings:
    def __init__(self, ari: AriPort, recordings: Recordings, tickets: TicketService) -> None:
        self.ari, self.recordings, self.tickets = ari, recordings, tickets

    async def keep(self, name: str) -> None:
        """A stored recording off the switch into the recordings directory (once)."""
        path = self.recordings.path(name)
        if not path.exists():
            audio = await self.ari.download(stored_recording(name) + "/file")
            seconds = wav_seconds(audio)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(audio)
            tmp.chmod(0o640)  # citizen audio (rule Y-1)
            tmp.replace(path)
            log.info("recording %s (%.0f s) is kept", name, seconds)

    async def forget(self, name: str) -> None:
        """Off the switch, once it is kept and on its ticket."""
        try:
            await self.ari.delete(stored_recording(name))
        except AriError as exc:
            if exc.status != 404:
                raise

    async def take(self, job: Job) -> None:
        call_id, name = str(job.payload["call_id"]), str(job.payload["name"])
        await self.keep(name)
        ticket = await self.tickets.attach_call_recording(call_id, name)
        if ticket is None:
            raise NoTicketYet(f"no ticket on {call_id} yet")
        try:
            await self.ari.delete(stored_recording(name))
        except AriError as exc:
            if exc.status != 404:
                raise
