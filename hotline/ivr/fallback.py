"""Voice messages left on the safe path while the backend was unreachable: nothing is lost.

When Asterisk cannot reach the backend, the dialplan (``hotline-fallback,voicemail``) records
the caller into the directory ARI serves as stored recordings, as
``hotline-fb-<call id>-c<caller digits>``: the switch keeps the call and the number until the
backend is back. The backend sweeps them in when it starts and then every ``interval`` seconds:
each message with speech in it becomes a voice-message ticket with a call-back task (once per
call: the registration is keyed by the call id), its audio is copied into our storage under a
name without the number (rule Y-1), and only then is it deleted from the switch. A message
whose call is still up (it may still be recording) or that fails at any step stays on the
switch for the next sweep.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import wave
from dataclasses import dataclass
from pathlib import Path

from hotline.agi.ari import AriClient, stored_recording
from hotline.ivr.flows import MIN_MESSAGE_SECONDS
from hotline.ticketing.model import TicketType
from hotline.ticketing.service import TicketService

log = logging.getLogger(__name__)

PREFIX = "hotline-fb-"
# <call id with its last "." made "-">-c<digits>; a call id is [systemname-]seconds.sequence
_NAME = re.compile(
    r"hotline-fb-(?P<head>[A-Za-z0-9-]{1,100})-(?P<seq>[0-9]{1,20})-c(?P<caller>[0-9]{0,20})"
)


@dataclass(frozen=True, slots=True)
class FallbackMessage:
    stored: str  # the name on the switch; it carries the caller's number: never logged
    call_id: str  # Asterisk's unique id, e.g. 1700000000.12
    caller: str  # "" when the number was withheld

    @property
    def name(self) -> str:
        """Our name for the recording: the call, not the number."""
        return PREFIX + self.call_id.replace(".", "-")


def parse(name: str) -> FallbackMessage | None:
    """A stored recording of the safe path, or None for any other name."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    return FallbackMessage(name, f"{m['head']}.{m['seq']}", m["caller"])


def wav_seconds(audio: bytes) -> float:
    """How long a WAV file plays; ValueError if it is not one."""
    try:
        with wave.open(io.BytesIO(audio)) as w:
            return float(w.getnframes() / w.getframerate())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None


class FallbackSweeper:
    def __init__(
        self, ari: AriClient, service: TicketService, folder: Path, interval: float = 60.0
    ) -> None:
        self.ari, self.service, self.folder, self.interval = ari, service, folder, interval

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the switch or the database is away: next time
                log.warning("safe-path voice messages: sweep failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> list[str]:
        """Take in every message waiting on the switch; returns the ticket numbers made."""
        stored = await self.ari.get("/recordings/stored")
        messages = [m for m in (parse(str(i.get("name", ""))) for i in stored or []) if m]
        if not messages:
            return []
        # A call still up may still be recording (Asterisk writes the WAV header on close):
        # its message waits for a later sweep.
        active = {str(c.get("id")) for c in await self.ari.get("/channels") or []}
        made = []
        for message in messages:
            if message.call_id in active:
                continue
            try:
                number = await self._take(message)
            except Exception as exc:
                log.warning("safe-path voice message of call %s: %s", message.call_id, exc)
                continue
            if number:
                made.append(number)
        return made

    async def _take(self, message: FallbackMessage) -> str:
        audio = await self.ari.download(stored_recording(message.stored) + "/file")
        seconds = wav_seconds(audio)
        number = ""
        if seconds >= MIN_MESSAGE_SECONDS:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{message.name}.wav"
            tmp = path.with_suffix(".part")
            tmp.write_bytes(audio)
            tmp.replace(path)
            ticket = await self.service.register_voice_message(
                message.call_id, message.caller, message.name, seconds, TicketType.CONSULTATION
            )
            number = ticket.number
            log.info(
                "safe-path voice message of call %s (%.0f s) is ticket %s",
                message.call_id,
                seconds,
                number,
            )
        else:
            log.info("safe-path voice message of call %s is empty; dropped", message.call_id)
        await self.ari.delete(stored_recording(message.stored))
        return number
