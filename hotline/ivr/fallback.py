"""Voice messages left on the safe path while the backend was unreachable: nothing is lost.

When Asterisk cannot reach the backend, the dialplan (``hotline-fallback,voicemail``) records
the caller into the directory ARI serves as stored recordings, as ``hotline-fb-e<sealed>``:
``<call id>|<caller digits>`` sealed with Asterisk's ``AES_ENCRYPT`` (func_aes: AES-128-ECB,
zero-padded, base64) under the switch's fallback key, made file-name-safe (``+/`` -> ``-_``,
no ``=``). So the switch keeps the call and the number until the backend is back, but the
number is in no file name and in no dialplan argument Asterisk logs (rule Y-1): Asterisk logs
an application's arguments after expansion, which shows only the sealed text, never the key
written inside the function call. The key is derived from the ARI password
(:func:`fallback_key`), a secret the switch and the backend already share, so there is no
second secret to keep in step — and not from the AGI secret, which Asterisk does log (the AGI
URL). Names of the older form ``hotline-fb-<call id>-c<caller digits>`` are still read.

The backend sweeps them in when it starts and then every ``interval`` seconds:
each message with speech in it becomes a voice-message ticket with a call-back task (once per
call: the registration is keyed by the call id), its audio is copied into our storage under a
name without the number (rule Y-1), and only then is it deleted from the switch. A message
whose call is still up (it may still be recording) or that fails at any step stays on the
switch for the next sweep.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import logging
import re
import wave
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hotline.agi.ari import AriClient, stored_recording
from hotline.ivr.flows import MIN_MESSAGE_SECONDS
from hotline.ticketing.model import TicketType
from hotline.ticketing.service import TicketService

log = logging.getLogger(__name__)

PREFIX = "hotline-fb-"
SEALED = PREFIX + "e"  # + the sealed call id and number
# the older form: <call id with its last "." made "-">-c<digits>; a call id is
# [systemname-]seconds.sequence
_NAME = re.compile(
    r"hotline-fb-(?P<head>[A-Za-z0-9-]{1,100})-(?P<seq>[0-9]{1,20})-c(?P<caller>[0-9]{0,20})"
)
_SEALED = re.compile(r"hotline-fb-e(?P<sealed>[A-Za-z0-9_-]{22,700})")
_OPENED = re.compile(r"(?P<call>[A-Za-z0-9._-]{1,150}\.[0-9]{1,20})\|(?P<caller>[0-9]{0,40})")
_BLOCK = 16
_KEY_INFO = b"hotline safe-path caller number, AES-128 key, v1"


def fallback_key(ari_password: str) -> str:
    """The 16-character AES-128 key of the safe-path recording names, from the ARI password.

    ``AES_ENCRYPT`` takes the key's 16 characters as the key bytes; these are URL-safe base64
    characters, so the key can be written into the dialplan as it is.
    """
    digest = hmac.new(ari_password.encode(), _KEY_INFO, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def _aes(key: str) -> Cipher[modes.ECB]:
    raw = key.encode()
    if len(raw) != _BLOCK:
        raise ValueError("the fallback key must be 16 bytes")
    return Cipher(algorithms.AES(raw), modes.ECB())  # what func_aes does (one block at a time)


def seal(key: str, call_id: str, caller: str) -> str:
    """The name the dialplan gives a safe-path message (for tests and tools; the dialplan does
    it with ``AES_ENCRYPT``, ``REPLACE`` and the same key)."""
    data = f"{call_id}|{caller}".encode()
    data += b"\0" * (-len(data) % _BLOCK)  # func_aes pads the last block with zeros
    encryptor = _aes(key).encryptor()
    sealed = encryptor.update(data) + encryptor.finalize()
    return SEALED + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


class UnreadableName(ValueError):
    """A safe-path message whose name does not open with our key (never shows the name)."""


@dataclass(frozen=True, slots=True)
class FallbackMessage:
    stored: str  # the name on the switch; it carries the caller's number: never logged
    call_id: str  # Asterisk's unique id, e.g. 1700000000.12
    caller: str  # "" when the number was withheld

    @property
    def name(self) -> str:
        """Our name for the recording: the call, not the number."""
        return PREFIX + self.call_id.replace(".", "-")


def parse(name: str, key: str) -> FallbackMessage | None:
    """A stored recording of the safe path, or None for any other name.

    Raises :class:`UnreadableName` for a sealed name that does not open with ``key`` (another
    key, a damaged name): it stays on the switch.
    """
    if name.startswith(SEALED):
        return _open(name, key)
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    return FallbackMessage(name, f"{m['head']}.{m['seq']}", m["caller"])


def _open(name: str, key: str) -> FallbackMessage:
    m = _SEALED.fullmatch(name)
    if m is None:
        raise UnreadableName("not a sealed safe-path name")
    text = m["sealed"]
    try:
        sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise UnreadableName("not base64") from None
    if not sealed or len(sealed) % _BLOCK:
        raise UnreadableName("not whole AES blocks")
    decryptor = _aes(key).decryptor()
    data = (decryptor.update(sealed) + decryptor.finalize()).rstrip(b"\0")
    try:
        opened = _OPENED.fullmatch(data.decode("ascii"))
    except UnicodeDecodeError:
        opened = None
    if opened is None:  # another key gives bytes, not "<call id>|<digits>"
        raise UnreadableName("does not open with this key")
    return FallbackMessage(name, opened["call"], opened["caller"])


def wav_seconds(audio: bytes) -> float:
    """How long a WAV file plays; ValueError if it is not one."""
    try:
        with wave.open(io.BytesIO(audio)) as w:
            return float(w.getnframes() / w.getframerate())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None


class FallbackSweeper:
    def __init__(
        self,
        ari: AriClient,
        service: TicketService,
        folder: Path,
        interval: float = 60.0,
        key: str | None = None,
    ) -> None:
        self.ari, self.service, self.folder, self.interval = ari, service, folder, interval
        self.key = key if key is not None else fallback_key(ari.password)

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
        messages, unreadable = [], 0
        for item in stored or []:
            try:
                message = parse(str(item.get("name", "")), self.key)
            except UnreadableName:
                unreadable += 1
                continue
            if message is not None:
                messages.append(message)
        if unreadable:
            log.warning(
                "safe-path voice messages: %d on the switch do not open with the fallback key "
                "(derived from ari.password: was the ARI password changed since they were "
                "recorded?); they stay on the switch",
                unreadable,
            )
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
