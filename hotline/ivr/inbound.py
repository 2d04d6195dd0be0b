"""The AGI entry point of the IVR: one handler per script path, the journal writer.

The flows themselves are in :mod:`hotline.ivr.flows`, over the `CallChannel` port; here they
run over the AGI adapter, and each call's journal row is written after the caller has left the
AGI session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from hotline.agi.fastagi import AGISession, Handler
from hotline.background import Background
from hotline.config.settings import Settings
from hotline.errors import CallerHungUp
from hotline.ivr import flows
from hotline.ivr.agi_channel import AgiCallChannel
from hotline.ivr.ari_channel import AriCallChannel, CallHandler
from hotline.ivr.flows import IvrConfig, IvrServices
from hotline.ivr.journal import CallJournal, CallRecord
from hotline.ivr.port import CallChannel

log = logging.getLogger(__name__)


class JournalWriter:
    """Writes journal rows in the background, after the call has left the AGI session."""

    def __init__(self, journal: CallJournal) -> None:
        self.journal = journal
        self.background = Background("journal")
        self.failures = 0

    def submit(self, call: CallRecord) -> None:
        self.background.submit(self._write(call), f"journal row {call.call_id}")

    async def _write(self, call: CallRecord) -> None:
        try:
            await self.journal.record(call)
        except Exception:
            self.failures += 1
            log.exception("journal row for call %s not written", call.call_id)

    async def drain(self) -> None:
        await self.background.drain()


async def journaled(
    ch: CallChannel,
    script: str,
    channel: str,
    cfg: IvrConfig,
    services: IvrServices,
    writer: JournalWriter,
    now: Callable[[], dt.datetime],
) -> None:
    """Run the IVR for one call on any adapter; its journal row says how it went."""
    call = CallRecord(
        call_id=ch.call_id,
        script=script,
        caller=ch.caller,  # "" when withheld
        channel=channel,
        started_at=now(),
    )
    try:
        await flows.inbound(ch, cfg, services, call, now())
        call.outcome = "routed"
    except CallerHungUp:
        call.outcome = "hangup"
    except asyncio.CancelledError:
        call.outcome = "cancelled"
        raise
    except Exception as exc:
        call.outcome = "error"
        call.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        call.ended_at = now()
        writer.submit(call)


def inbound_handler(
    cfg: IvrConfig, services: IvrServices, writer: JournalWriter, now: Callable[[], dt.datetime]
) -> Handler:
    """The FastAGI / process AGI handler for ``…/ivr``: the flows over the AGI adapter."""

    async def handle(session: AGISession) -> None:
        env = session.env
        await journaled(
            AgiCallChannel(session.channel), env.script, env.channel, cfg, services, writer, now
        )

    return handle


def stasis_handler(
    cfg: IvrConfig, services: IvrServices, writer: JournalWriter, now: Callable[[], dt.datetime]
) -> CallHandler:
    """The same flows for calls that enter the Stasis application (ARI)."""

    async def handle(call: AriCallChannel) -> None:
        await journaled(call, "ari", f"ari:{call.id}", cfg, services, writer, now)

    return handle


def ivr_config(settings: Settings) -> IvrConfig:
    ivr = settings.ivr
    return IvrConfig(
        menu=ivr.menu,
        utility_menu=ivr.utility_menu,
        timeout_ms=ivr.digit_timeout_ms,
        attempts=ivr.attempts,
        max_wait_seconds=ivr.max_wait_seconds,
        record_max_seconds=ivr.record_max_seconds,
        record_silence_seconds=ivr.record_silence_seconds,
        repeat_days=ivr.repeat_days,
        timezone=settings.city.timezone,
    )


def scripts(
    settings: Settings,
    services: IvrServices,
    writer: JournalWriter,
    now: Callable[[], dt.datetime],
) -> dict[str, Handler]:
    """The AGI scripts the backend serves, by path (FastAGI and process AGI alike)."""
    return {"ivr": inbound_handler(ivr_config(settings), services, writer, now)}
