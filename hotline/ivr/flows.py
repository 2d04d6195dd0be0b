"""The 24-hour 12345 IVR as flows over the `CallChannel` port (rule C-1: always answered).

Theory of operation. :func:`inbound` answers, plays the welcome and the 110/119/120 notice
(rule I-6), offers a repeat caller its open ticket first, then runs the main menu from config.
A request type goes to the queue (with the type, the path and any ticket for the screen pop) —
or to a voice message when no agent is logged in or the estimated wait is over the limit; a
utility emergency (water, power, gas) goes to the queue at top priority (rule H-6); ticket
progress and voice messages are self-service. A missing or wrong key repeats the menu up to the
configured number of times, then the operator. Every step is noted on the call's journal row,
so a hang-up anywhere says how far the caller got. The flows know nothing of AGI or ARI.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from hotline.errors import Unavailable
from hotline.ivr.journal import CallRecord
from hotline.ivr.port import (
    CallChannel,
    CallerHungUp,
    ChannelError,
    Handoff,
    Recording,
    digits,
    number,
    prompt,
)

log = logging.getLogger(__name__)

REQUEST_TYPES = ("consultation", "help", "complaint", "suggestion")
UTILITY_PRIORITY = 9  # rule H-6: emergencies first
MIN_MESSAGE_SECONDS = 1.0  # of speech: less is no message
KEYS = "0123456789*#"  # any key stops the welcome: a wrong one is explained by the menu
# The repeat-caller lookup has had the whole welcome and notice; past them it may hold the caller
# in silence only this long (a starved database or backend), then the caller gets the menu.
LOOKUP_GRACE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class IvrConfig:
    menu: Mapping[str, str]
    utility_menu: Mapping[str, str]
    timeout_ms: int = 5000
    attempts: int = 3
    max_wait_seconds: int = 120
    record_max_seconds: int = 120
    record_silence_seconds: int = 5  # people need a moment to start after the beep
    repeat_days: int = 30
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class TicketInfo:
    """What a caller may hear about a ticket: no identity, no text (rule Y-1)."""

    number: str
    state: str
    unit: str | None
    due: dt.datetime | None


class IvrServices(Protocol):
    """What the flows need from the rest of the backend."""

    async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]: ...

    async def ticket(self, number: str) -> TicketInfo | None: ...

    async def agents_available(self) -> int: ...

    async def estimated_wait(self, priority: int) -> float: ...

    def message_name(self, call: CallRecord, request_type: str) -> str:
        """The name to record a voice message under: on the switch it is the message's record
        until a ticket holds it, so it says (sealed) whose message it is."""
        ...

    async def voice_message(self, call: CallRecord, recording: Recording, request_type: str) -> str:
        """Register the message as a ticket with a call-back task; returns its number, or ""
        when it could not be registered in time (it stays on the switch and is swept in)."""
        ...

    def discard_message(self, recording: Recording) -> None:
        """A recording with nothing said: off the switch (in the background), so that no sweep
        makes it a ticket."""
        ...


class Flow:
    """One call through the IVR."""

    def __init__(
        self, ch: CallChannel, cfg: IvrConfig, svc: IvrServices, call: CallRecord, now: dt.datetime
    ) -> None:
        self.ch, self.cfg, self.svc, self.call, self.now = ch, cfg, svc, call, now
        self.ticket = ""  # a ticket the agent's screen should pop

    def step(self, name: str) -> None:
        self.call.step(name)

    @property
    def path(self) -> str:
        return ">".join(s for s in self.call.steps if ":" in s)

    # -- the call ---------------------------------------------------------------------------
    async def run(self) -> Handoff:
        await self.ch.answer()
        self.step("answer")
        # The caller hears the welcome at once; the repeat-caller lookup runs meanwhile (a key
        # pressed before the first prompt starts would be lost).
        lookup = asyncio.create_task(self._open_tickets())
        try:
            key = await self.ch.play([prompt("welcome")], KEYS)  # a key cuts the welcome short,
            self.step("welcome")
            await self.ch.play_through([prompt("emergency_notice")])  # never the notice (I-6)
            self.step("notice")
            key = key or await self.ch.play([], KEYS)  # or a key pressed during the notice
        except BaseException:
            lookup.cancel()
            with contextlib.suppress(BaseException):
                await lookup
            raise
        try:
            mine = await asyncio.wait_for(lookup, LOOKUP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("call %s: repeat-caller lookup too slow, menu first", self.ch.call_id)
            self.step("lookup_slow")
            mine = []
        if mine and not key:
            await self._repeat_caller(mine)
        for _ in range(3):  # self-service may bring the caller back to the menu
            route = await self._main_menu(key)
            handoff = await self._dispatch(route)
            if handoff is not None:
                return handoff
            key = ""
        return Handoff("operator", path=self.path, ticket=self.ticket)

    async def _open_tickets(self) -> list[TicketInfo]:
        """A repeat caller: an open ticket in the last N days goes with the call. The lookup is
        a courtesy: if it fails, the caller is served as a new one."""
        if not self.ch.caller:
            return []
        since = self.now - dt.timedelta(days=self.cfg.repeat_days)
        try:
            mine = await self.svc.open_tickets(self.ch.caller, since)
        except Exception:
            log.warning("call %s: repeat-caller lookup failed", self.ch.call_id, exc_info=True)
            self.step("lookup_failed")
            return []
        if mine:
            self.ticket = mine[0].number  # for the agent's screen pop
        return mine

    async def _repeat_caller(self, mine: list[TicketInfo]) -> None:
        """Its progress first, if the caller wishes."""
        self.step("repeat_caller")
        choice = await self._choose([prompt("repeat_offer")], {"1": "progress", "2": "menu"})
        if choice == "progress":
            self.step("menu:repeat_progress")
            await self._announce(mine[:3])

    async def _choose(self, prompts: list[str], options: Mapping[str, str], used: int = 0) -> str:
        """The rest of ``attempts`` tries at a small menu (``used`` already spent); "" when
        the caller never chose."""
        for attempt in range(used + 1, self.cfg.attempts + 1):
            got = await self.ch.collect(prompts, 1, self.cfg.timeout_ms)
            self.call.digits += got.digits
            if got.digits in options:
                return options[got.digits]
            if got.digits and attempt < self.cfg.attempts:
                await self.ch.play([prompt("invalid")])
                self.step("invalid")
        return ""

    async def _main_menu(self, key: str) -> str:
        if key and key in self.cfg.menu:
            self.call.digits += key
            route = self.cfg.menu[key]
        else:
            used = 0
            if key:  # a wrong key during the welcome is the first try
                self.call.digits += key
                await self.ch.play([prompt("invalid")])
                self.step("invalid")
                used = 1
            route = await self._choose([prompt("menu")], self.cfg.menu, used)
            if not route:
                self.step("attempts_exhausted")
                return "operator"
        key_of = next(k for k, r in self.cfg.menu.items() if r == route)
        self.step(f"menu:{key_of}")
        return route

    async def _dispatch(self, route: str) -> Handoff | None:
        if route in REQUEST_TYPES:
            return await self._to_queue(route)
        if route == "utility":
            return await self._utility()
        if route == "progress":
            if await self._progress():
                return None  # back to the main menu
            return Handoff("queue", type="consultation", path=self.path, ticket=self.ticket)
        if route == "voicemail":
            return await self._voice_message("help")
        return Handoff("operator", path=self.path, ticket=self.ticket)

    async def _to_queue(self, request_type: str) -> Handoff:
        if await self.svc.agents_available() == 0:
            self.step("no_agents")
            return await self._voice_message(request_type)
        if await self.svc.estimated_wait(0) > self.cfg.max_wait_seconds:
            self.step("long_wait")
            return await self._voice_message(request_type)
        await self.ch.play([prompt("transfer")])
        return Handoff("queue", type=request_type, path=self.path, ticket=self.ticket)

    async def _utility(self) -> Handoff:
        """Rule H-6: water, power or gas — to the queue at the top, for the three-way call."""
        utility = await self._choose([prompt("utility_menu")], self.cfg.utility_menu)
        if not utility:
            self.step("attempts_exhausted")
            return Handoff("operator", path=self.path, ticket=self.ticket)
        self.step(f"utility:{utility}")
        await self.ch.play([prompt("transfer")])
        return Handoff(
            "utility",
            type="help",
            priority=UTILITY_PRIORITY,
            path=self.path,
            ticket=self.ticket,
            utility=utility,
        )

    # -- self-service -----------------------------------------------------------------------
    async def _progress(self) -> bool:
        """Tell the caller where their tickets are; False when the backend cannot say in time
        (the caller is then handed to a person, told so — never silence, never a guess)."""
        got = await self.ch.collect([prompt("progress_enter")], 20, self.cfg.timeout_ms)
        keyed = got.digits
        found: list[TicketInfo] = []
        try:
            if len(keyed) > 8:  # 20261127 0042 -> 20261127-0042
                one = await self.svc.ticket(f"{keyed[:8]}-{keyed[8:]}")
                found = [one] if one else []
                self.step("progress:number")
            elif self.ch.caller and not keyed:
                since = self.now - dt.timedelta(days=365)
                found = await self.svc.open_tickets(self.ch.caller, since)
                self.step("progress:own")
        except Unavailable as exc:
            log.warning("call %s: progress unavailable (%s)", self.ch.call_id, exc)
            self.step("progress:unavailable")
            await self.ch.play([prompt("progress_unavailable")])
            return False
        if not found:
            await self.ch.play([prompt("progress_none")])
            self.step("progress:none")
            return True
        await self._announce(found[:3])
        return True

    async def _announce(self, tickets: list[TicketInfo]) -> None:
        """State, handling unit and due date of each ticket — and nothing about the caller."""
        tz = zoneinfo.ZoneInfo(self.cfg.timezone)
        for t in tickets:
            clips = [prompt("progress_intro"), *digits(t.number), prompt(f"state_{t.state}")]
            await self.ch.play(clips)
            if t.unit:
                try:
                    await self.ch.play([prompt("progress_unit"), prompt(f"unit_{t.unit}")])
                except ChannelError:
                    log.warning("no prompt for unit %s; build prompts after adding units", t.unit)
            if t.due is not None:
                due = t.due.astimezone(tz)
                await self.ch.play(
                    [
                        prompt("progress_due"),
                        *number(due.month),
                        prompt("month"),
                        *number(due.day),
                        prompt("day"),
                    ]
                )
        self.step("progress:told")

    async def _voice_message(self, request_type: str) -> Handoff:
        await self.ch.play([prompt("voicemail")])
        self.step("voicemail")
        name = self.svc.message_name(self.call, request_type)
        try:
            recording = await self.ch.record(
                name, self.cfg.record_max_seconds, self.cfg.record_silence_seconds
            )
        finally:
            self.step("recorded")
        kept = recording.seconds >= MIN_MESSAGE_SECONDS
        if kept:
            self.ticket = await self.svc.voice_message(self.call, recording, request_type)
            self.step("voicemail:ticket" if self.ticket else "voicemail:pending")
        else:
            self.step("voicemail:empty")  # nothing said: no ticket, no call-back promised
            self.svc.discard_message(recording)  # nor later from the switch
        if recording.ended_by == "hangup":
            raise CallerHungUp("hung up after the message")
        closing = "voicemail_saved" if kept else "voicemail_empty"
        await self.ch.play([prompt(closing), prompt("goodbye")])
        return Handoff("hangup", path=self.path, ticket=self.ticket)


async def inbound(
    ch: CallChannel, cfg: IvrConfig, svc: IvrServices, call: CallRecord, now: dt.datetime
) -> Handoff:
    """Run the IVR for one call and hand it on. Fail-safe: an error inside a flow is logged
    with the call id and the caller goes to the operator; a hang-up ends it quietly."""
    flow = Flow(ch, cfg, svc, call, now)
    try:
        handoff = await flow.run()
    except CallerHungUp:
        raise
    except Exception:
        log.exception(
            "IVR call %s failed after %s; to the operator", ch.call_id, ">".join(call.steps)
        )
        call.error = "flow failed"
        handoff = Handoff("operator", path=flow.path, ticket=flow.ticket, extra={"ivr_error": "1"})
    await ch.transfer(handoff)
    call.route = handoff.route if handoff.route != "queue" else f"queue:{handoff.type}"
    call.step(f"handoff:{handoff.route}")
    return handoff
