"""The SMS gateway's adapters (the port: :class:`hotline.ticketing.notices.SmsGateway`): how
the emergency plan's alerts reach a duty leader's or a handler's mobile phone (rules E-2, E-3),
beside the console socket and the notifications list.

Adapters: :class:`LogSms` (the default: each message written to the log, the number masked),
:class:`HttpSms` (a generic gateway: ``POST {"to", "text"}`` as JSON, any 2xx is sent, anything
else raises so the durable job tries again), :class:`FakeSms` (tests: what was sent). Messages
go to staff numbers, never to citizens, and carry nothing that identifies a citizen (Y-1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiohttp

from hotline import privacy
from hotline.ticketing.notices import SmsGateway

log = logging.getLogger(__name__)


class LogSms:
    async def send(self, phone: str, text: str) -> None:
        log.info("sms to %s: %s", privacy.mask_phone(phone), text)


class SmsRefused(Exception):
    """The gateway did not take the message (the job tries again)."""


class HttpSms:
    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self._session: aiohttp.ClientSession | None = None

    async def send(self, phone: str, text: str) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        async with self._session.post(self.url, json={"to": phone, "text": text}) as resp:
            if not 200 <= resp.status < 300:
                raise SmsRefused(f"the SMS gateway answered {resp.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass
class FakeSms:
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))


def gateway(kind: str, url: str = "", timeout: float = 5.0) -> SmsGateway | None:
    """The adapter ``watch.sms`` names; None for ``off``."""
    if kind == "off":
        return None
    if kind == "http":
        return HttpSms(url, timeout)
    return LogSms()
