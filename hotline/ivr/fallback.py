"""Voice messages on the switch: the switch's recording is the source of truth until a
ticket holds it, so no message is lost to a dying backend or an absent database.

Two kinds are recorded into the directory ARI serves as stored recordings, and both carry in
their name who left them — sealed, so the number is in no file name and in no dialplan argument
Asterisk logs (rule Y-1):

* ``hotline-vm-e<sealed>`` — recorded by the IVR (FastAGI or ARI): ``<call id>|<caller
  digits>|<request type>`` sealed by the backend with the same cipher and key as below;
* ``hotline-fb-e<sealed>`` — recorded by the dialplan's safe path (``hotline-fallback``) when
  Asterisk cannot reach the backend: ``<call id>|<caller digits>`` sealed with Asterisk's
  ``AES_ENCRYPT`` (func_aes: AES-128-ECB, zero-padded, base64) made file-name-safe (``+/`` ->
  ``-_``, no ``=``). Asterisk logs an application's arguments after expansion, which shows only
  the sealed text, never the key written inside the function call.

The key is derived from the ARI password (:func:`fallback_key`), a secret the switch and the
backend already share — not from the AGI secret, which Asterisk logs (the AGI URL). Names of
older forms (``hotline-fb-<call id>-c<digits>``, ``hotline-vm-<call id>``) are still read.

:class:`SwitchMessages` takes one in (:meth:`~SwitchMessages.take`): downloads it, keeps the
audio in our storage under a name without the number (``hotline-vm-<call id>``), registers
the voice-message ticket with its call-back task — keyed by the call id, so at most one ticket
per call whoever gets there first (the IVR's own registration, its durable job, a sweep of
this node or another) — and only then deletes it from the switch. A message with less than a
second of speech is dropped. The IVR registers its messages at once when the database answers
in time and leaves a durable job to take the recording in; whatever is left — the backend
killed mid-message, the database away, the safe path — is found by :meth:`~SwitchMessages.sweep`
at start and every ``ari.sweep_interval`` seconds. A message whose call is still up (it may
still be recording) waits for a later sweep; one that fails at any step stays on the switch.
"""

from __future__ import annotations

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
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hotline.agi.ari import AriPort, stored_recording
from hotline.errors import AriError
from hotline.ivr.flows import MIN_MESSAGE_SECONDS
from hotline.ticketing.model import TicketType

log = logging.getLogger(__name__)

PREFIX = "hotline-fb-"  # the safe path's
IVR_PREFIX = "hotline-vm-"  # the IVR's
SEALED = PREFIX + "e"  # + the sealed call id and number
IVR_SEALED = IVR_PREFIX + "e"  # + the sealed call id, number and request type
# the older forms: <call id with its last "." made "-">[-c<digits>]; a call id is
# [systemname-]seconds.sequence
_NAME = re.compile(
    r"hotline-fb-(?P<head>[A-Za-z0-9-]{1,100})-(?P<seq>[0-9]{1,20})-c(?P<caller>[0-9]{0,20})"
)
_IVR_NAME = re.compile(r"hotline-vm-(?P<head>[A-Za-z0-9-]{1,100}?[0-9]{1,20})-(?P<seq>[0-9]{1,20})")
_SEALED = re.compile(r"hotline-(?:fb|vm)-e(?P<sealed>[A-Za-z0-9_-]{22,700})")
_OPENED = re.compile(
    r"(?P<call>[A-Za-z0-9._-]{1,150}\.[0-9]{1,20})\|(?P<caller>[0-9]{0,40})"
    r"(?:\|(?P<type>[a-z_]{1,20}))?"
)
_BLOCK = 16
_KEY_INFO = b"hotline safe-path caller number, AES-128 key, v1"


def fallback_key(ari_password: str) -> str:
    """The 16-character AES-128 key of the sealed recording names, from the ARI password.

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


def seal(key: str, call_id: str, caller: str, request_type: str = "") -> str:
    """The sealed name of a message: the IVR's (with its request type) or, without one, the
    safe path's (the dialplan does that with ``AES_ENCRYPT``, ``REPLACE`` and the same key)."""
    text = f"{call_id}|{caller}|{request_type}" if request_type else f"{call_id}|{caller}"
    data = text.encode()
    data += b"\0" * (-len(data) % _BLOCK)  # func_aes pads the last block with zeros
    encryptor = _aes(key).encryptor()
    sealed = encryptor.update(data) + encryptor.finalize()
    prefix = IVR_SEALED if request_type else SEALED
    return prefix + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


class UnreadableName(ValueError):
    """A sealed message name that does not open with our key (never shows the name)."""


@dataclass(frozen=True, slots=True)
class SwitchMessage:
    stored: str  # the name on the switch; it may carry the caller's number: never logged
    call_id: str  # Asterisk's unique id, e.g. 1700000000.12
    caller: str | None  # "" when the number was withheld; None: not in the name (older form)
    request_type: TicketType = TicketType.CONSULTATION
    ivr: bool = False  # recorded by the IVR (else by the safe path)

    @property
    def name(self) -> str:
        """Our name for the recording: the call, not the number."""
        return (IVR_PREFIX if self.ivr else PREFIX) + self.call_id.replace(".", "-")


FallbackMessage = SwitchMessage  # the name before the IVR's messages were swept in too


def parse(name: str, key: str) -> SwitchMessage | None:
    """A voice message on the switch, or None for any other name.

    Raises :class:`UnreadableName` for a sealed name that does not open with ``key`` (another
    key, a damaged name): it stays on the switch.
    """
    if name.startswith((SEALED, IVR_SEALED)):
        return _open(name, key)
    m = _NAME.fullmatch(name)
    if m is not None:
        return SwitchMessage(
            name, f"{m['head']}.{m['seq']}", m["caller"], TicketType.CONSULTATION, False
        )
    m = _IVR_NAME.fullmatch(name)
    if m is not None:
        return SwitchMessage(name, f"{m['head']}.{m['seq']}", None, TicketType.CONSULTATION, True)
    return None


def _open(name: str, key: str) -> SwitchMessage:
    m = _SEALED.fullmatch(name)
    if m is None:
        raise UnreadableName("not a sealed message name")
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
    ivr = name.startswith(IVR_SEALED)
    if opened is None or ivr != bool(opened["type"]):  # another key gives bytes, not our text
        raise UnreadableName("does not open with this key")
    try:
        kind = TicketType(opened["type"]) if ivr else TicketType.CONSULTATION
    except ValueError:
        raise UnreadableName("names no request type") from None
    return SwitchMessage(name, opened["call"], opened["caller"], kind, ivr)


def wav_seconds(audio: bytes) -> float:
    """How long a WAV file plays; ValueError if it is not one."""
    try:
        with wave.open(io.BytesIO(audio)) as w:
            return float(w.getnframes() / w.getframerate())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None


class Registrar(Protocol):
    """What taking a message in needs of the ticketing service."""

    async def register_voice_message(
        self,
        call_id: str,
        phone: str | None,
        recording: str,
        seconds: float,
        request_type: TicketType,
        *,
        stored: str = "",
    ) -> object: ...


class SwitchMessages:
    """Takes voice messages in from the switch (ARI's stored recordings)."""

    def __init__(
        self, ari: AriPort, service: Registrar, folder: Path, key: str | None = None
    ) -> None:
        self.ari, self.service, self.folder = ari, service, folder
        self.key = key if key is not None else fallback_key(ari.password)

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
                "voice messages: %d on the switch do not open with the key derived from "
                "ari.password (was the ARI password changed since they were recorded?); they "
                "stay on the switch",
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
                number = await self.take(message)
            except Exception as exc:
                log.warning(
                    "voice message of call %s stays on the switch: %s",
                    message.call_id,
                    type(exc).__name__,
                )
                continue
            if number:
                made.append(number)
        return made

    async def take_stored(self, stored: str) -> str:
        """Take in the message of this stored name (the durable job's handler)."""
        message = parse(stored, self.key)
        if message is None:
            raise ValueError("not a voice message name")
        return await self.take(message)

    async def take(self, message: SwitchMessage) -> str:
        """Keep the audio, register the ticket (once per call), delete it from the switch;
        the ticket's number ("" when nothing was said, or when it was taken in before)."""
        path = self.folder / f"{message.name}.wav"
        try:
            audio = await self.ari.download(stored_recording(message.stored) + "/file")
        except AriError as exc:
            if exc.status == 404 and path.exists():
                return ""  # taken in before (by another job, sweep or node)
            raise
        seconds = wav_seconds(audio)
        number = ""
        if seconds >= MIN_MESSAGE_SECONDS:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(audio)
            tmp.chmod(0o640)  # citizen audio (rule Y-1)
            tmp.replace(path)
            ticket = await self.service.register_voice_message(
                message.call_id, message.caller, message.name, seconds, message.request_type
            )
            number = str(getattr(ticket, "number", ""))
            log.info(
                "voice message of call %s (%.0f s) is in ticket %s",
                message.call_id,
                seconds,
                number,
            )
        else:
            log.info("voice message of call %s is empty; dropped", message.call_id)
        try:
            await self.ari.delete(stored_recording(message.stored))
        except AriError as exc:
            if exc.status != 404:
                raise
        return number


FallbackSweeper = SwitchMessages
