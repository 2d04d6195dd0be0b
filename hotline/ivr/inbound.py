"""The inbound 12345 greeting and main menu (walking skeleton of the IVR).

The flow answers, plays the Mandarin welcome and the 110/119/120 notice (rule I-6), reads one
key and sets ``HOTLINE_ROUTE`` for the dialplan, which continues on it. A key pressed during a
prompt counts (prompts are interruptible). No key or a wrong key repeats the menu up to the
configured number of attempts, then the route is the operator. Whatever happens, the call's
journal row says how far the caller got.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hotline.agi.channel import AGIChannel, AGIHangup
from hotline.agi.fastagi import AGISession, Handler
from hotline.config.settings import Settings
from hotline.ivr.journal import CallJournal, CallRecord

log = logging.getLogger(__name__)

ROUTE_VARIABLE = "HOTLINE_ROUTE"
OPERATOR_ROUTE = "operator"


def prompt(name: str) -> str:
    """Asterisk sound name of a hotline prompt (kept in a directory of its own)."""
    return f"hotline/{name}"


@dataclass(frozen=True, slots=True)
class Menu:
    keys: Mapping[str, str]  # DTMF key -> route
    timeout_ms: int = 5000
    attempts: int = 3

    @property
    def escape_digits(self) -> str:
        return "".join(sorted(self.keys))


async def main_menu(channel: AGIChannel, menu: Menu, call: CallRecord) -> str:
    """Run the menu on ``channel``; return the route set in ``HOTLINE_ROUTE``."""
    await channel.answer()
    call.step("answer")
    key = await channel.stream_file(prompt("welcome"), menu.escape_digits)
    call.step("welcome")
    if not key:
        key = await channel.stream_file(prompt("emergency_notice"), menu.escape_digits)  # I-6
        call.step("emergency_notice")
    route = ""
    for attempt in range(1, menu.attempts + 1):
        if not key:
            key = (await channel.get_data(prompt("menu"), menu.timeout_ms, 1)).digits
            call.step("menu")
        call.digits += key
        route = menu.keys.get(key, "")
        if route:
            break
        if key and attempt < menu.attempts:
            await channel.stream_file(prompt("invalid"))
            call.step("invalid")
        key = ""
    if not route:
        route = OPERATOR_ROUTE
        call.step("attempts_exhausted")
    await channel.set_variable(ROUTE_VARIABLE, route)
    call.route = route
    call.step(f"route:{route}")
    return route


class JournalWriter:
    """Writes journal rows in the background, after the call has left the AGI session."""

    def __init__(self, journal: CallJournal) -> None:
        self.journal = journal
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures = 0

    def submit(self, call: CallRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._write(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, call: CallRecord) -> None:
        try:
            await self.journal.record(call)
        except Exception:
            self.failures += 1
            log.exception("journal row for call %s not written", call.call_id)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def inbound_handler(menu: Menu, writer: JournalWriter, now: Callable[[], dt.datetime]) -> Handler:
    """The FastAGI handler for ``agi://…/ivr``."""

    async def handle(session: AGISession) -> None:
        env = session.env
        call = CallRecord(
            call_id=env.unique_id,
            script=env.script,
            caller=env.caller_number,
            channel=env.channel,
            started_at=now(),
        )
        try:
            await main_menu(session.channel, menu, call)
            call.outcome = "routed"
        except AGIHangup:
            call.outcome = "hangup"
            raise
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

    return handle


def scripts(
    settings: Settings, writer: JournalWriter, now: Callable[[], dt.datetime]
) -> dict[str, Handler]:
    """The AGI scripts the backend serves, by path (FastAGI and process AGI alike)."""
    menu = Menu(settings.ivr.menu, settings.ivr.digit_timeout_ms, settings.ivr.attempts)
    return {"ivr": inbound_handler(menu, writer, now)}
