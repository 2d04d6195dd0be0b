"""The utility three-way call over ARI (rule H-6): citizen, agent and the utility's duty line.

Theory of operation. An agent talking with a caller asks for the conference (the console's
``utility`` command). The caller's own task (:meth:`hotline.queue.calls.QueueCalls._talk`)
runs it, so one task still owns every event of the call: the caller goes to its holding bridge
with music; the directory's duty numbers for the utility that cover the hour are rung one after
the other — ``/channels/create`` with a fixed channel id per attempt (``utility-<call>-<n>``: a
repeat is a 409, never a second ringing phone), the hotline's number as caller id, the role
``utility``, then ``/dial``. A number that answers hears the notice (the hotline, an urgent
repair, the ticket's number — never who called) and joins the talk bridge when it presses 1 or
stays on the line past ``accept_timeout``; the caller comes back from hold into the same mixing
bridge: three parties. A number that does not answer within ``utility.ring_timeout``, is busy
or rejects is told apart by the dial status and the hang-up cause, logged, and the next is
rung. When every number fails, the caller is taken back from hold to the agent and the agent is
told. Every attempt is a record of the queue log (UTILITYDIAL, UTILITYCONNECT, UTILITYFAIL,
UTILITYEND with the number, the outcome, the cause and the seconds), so each leg's times are on
record with the call's other records.

After the connect the agent may leave (hang up its phone): citizen and utility talk on; the
call ends when the last of them hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hotline.errors import AriError
from hotline.queue.acd import QueueEvent
from hotline.utility.directory import Directory, DutyNumber

if TYPE_CHECKING:
    from hotline.queue.calls import QueueCall, QueueCalls

log = logging.getLogger(__name__)

CONFERENCE = "HotlineConference"  # in a talking call's inbox: the agent asked for the utility
GONE = ("StasisEnd", "ChannelHangupRequest", "ChannelDestroyed")
ACCEPT_DIGIT = "1"
ACCEPT_TIMEOUT = 8.0  # seconds the duty line has after the notice; then it is put through
BUSY_CAUSES = frozenset({17})  # Q.850 user busy
NO_ANSWER_CAUSES = frozenset({18, 19})  # no user responding, no answer
REJECTED_CAUSES = frozenset({21})  # call rejected
DIAL_OUTCOMES = {"BUSY": "busy", "NOANSWER": "no_answer", "CONGESTION": "failed"}


def _cause(event: dict[str, Any]) -> int | None:
    cause = event.get("cause")
    return cause if isinstance(cause, int) and not isinstance(cause, bool) else None


def outcome_of(dialstatus: str = "", cause: int | None = None) -> str:
    """What became of a duty number that did not answer: busy, no_answer, rejected or failed
    (the dial status first; a hang-up's Q.850 cause where there is none)."""
    if dialstatus in DIAL_OUTCOMES:
        return DIAL_OUTCOMES[dialstatus]
    if cause in BUSY_CAUSES:
        return "busy"
    if cause in NO_ANSWER_CAUSES:
        return "no_answer"
    if cause in REJECTED_CAUSES:
        return "rejected"
    return "failed"


@dataclass(frozen=True, slots=True)
class Attempt:
    leg: str
    number: str
    outcome: str  # answered | busy | no_answer | rejected | failed | caller_gone
    cause: int | None
    seconds: float  # from the dial to the answer or the failure


@dataclass(frozen=True, slots=True)
class Result:
    """The conference's outcome, for the agent's console and the ticket."""

    call_id: str
    utility: str
    connected: str | None  # the number that answered; None: every number failed
    attempts: tuple[Attempt, ...]


class Conferences:
    def __init__(
        self,
        calls: QueueCalls,
        directory: Directory,
        *,
        ring_timeout: float,
        caller_id: str,
        accept_timeout: float = ACCEPT_TIMEOUT,
    ) -> None:
        self.calls, self.directory = calls, directory
        self.ring_timeout, self.caller_id, self.accept_timeout = (
            ring_timeout,
            caller_id,
            accept_timeout,
        )
        self.results: list[Callable[[str, Result], None]] = []  # the console: (agent, result)
        self.recorded: list[Callable[[str, str], None]] = []  # (call id, recording name)

    # -- the agent's request (any task) ------------------------------------------------------
    def request(self, call: QueueCall, utility: str, ticket: str = "") -> None:
        if utility not in self.directory.utilities:
            raise ValueError(f"no duty numbers for {utility!r} in the directory")
        call.deliver({"type": CONFERENCE, "utility": utility, "ticket": ticket})

    # -- in the caller's task ----------------------------------------------------------------
    async def run(self, call: QueueCall, agent_leg: str, event: dict[str, Any]) -> bool:
        """Ring the duty numbers; True when the caller hung up meanwhile (the call is over)."""
        utility, ticket = str(event.get("utility")), str(event.get("ticket") or "")
        numbers = self.directory.numbers_at(utility, self.calls.clock.now())
        if call.utility_leg is not None:
            return False  # one utility on a call at a time
        attempts: list[Attempt] = []
        deferred: list[dict[str, Any]] = []  # events for the talk loop, handed back after
        await self.calls.hold(call.call_id)
        with contextlib.suppress(AriError):  # the citizen is told the call will be recorded
            await self.calls.ari.post(
                f"/channels/{call.call_id}/play",
                media="sound:hotline/recording_notice",
                playbackId=f"consent-{call.call_id}-{len(call.utility_attempts)}",
            )
        for n, duty in enumerate(numbers, start=1 + len(call.utility_attempts)):
            leg = f"utility-{call.call_id}-{n}"
            attempt = await self._attempt(call, agent_leg, leg, duty, ticket, deferred)
            attempts.append(attempt)
            call.utility_attempts.append(attempt)
            if attempt.outcome in ("caller_gone", "answered"):
                break
        gone = any(a.outcome == "caller_gone" for a in attempts)
        connected = next((a.number for a in attempts if a.outcome == "answered"), None)
        if connected is not None and call.utility_leg is not None and call.talk is not None:
            await self.calls.ari.post(f"/bridges/{call.talk}/addChannel", channel=call.utility_leg)
        if not gone:
            with contextlib.suppress(AriError):  # back with the agent (and the utility)
                await self.calls.unhold(call.call_id)
        if connected is not None and not gone:
            await self._record(call)
        if connected is None and not gone:
            log.warning(
                "utility: no %s duty number answered for %s (%d tried)",
                utility,
                call.call_id,
                len(attempts),
            )
            self._log(call, "UTILITYFAIL", utility, str(len(attempts)))
        call.pending.extend(deferred)
        result = Result(call.call_id, utility, connected, tuple(attempts))
        agent = call.agent_id or ""
        for hook in self.results:
            try:
                hook(agent, result)
            except Exception:
                log.exception("utility: a result hook failed on %s", call.call_id)
        return gone

    async def _attempt(
        self,
        call: QueueCall,
        agent_leg: str,
        leg: str,
        duty: DutyNumber,
        ticket: str,
        deferred: list[dict[str, Any]],
    ) -> Attempt:
        calls, cid = self.calls, call.call_id
        assert calls.stasis is not None
        call.extra_legs.add(leg)
        entered = call.legs_in.setdefault(leg, asyncio.Event())
        call.legs_done.setdefault(leg, asyncio.Event())
        calls.stasis.own(leg, call)
        started = calls.clock.monotonic()
        self._log(call, "UTILITYDIAL", duty.number, leg)
        try:
            await calls.ari.post(
                "/channels/create",
                endpoint=duty.number,
                app=calls.app,
                appArgs=f"utility,{cid}",
                channelId=leg,
                originator=cid,
                body={"variables": {"CALLERID(num)": self.caller_id, "HOTLINE_CALL": cid}},
            )
        except AriError as exc:
            if exc.status != 409:  # 409: this attempt's leg exists already (a repeat)
                return self._failed(call, leg, duty, "failed", None, started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(entered.wait(), calls.leg_enters)
        try:
            await calls.ari.post(f"/channels/{leg}/dial", timeout=math.ceil(self.ring_timeout) + 5)
        except AriError:
            await calls._hang_up(leg)
            return self._failed(call, leg, duty, "failed", None, started)
        deadline = started + self.ring_timeout
        while True:
            event = await call.next(deadline - calls.clock.monotonic())
            if event is None:  # rang out: the next number
                await calls._hang_up(leg)
                return self._failed(call, leg, duty, "no_answer", None, started)
            done = await self._ringing(call, agent_leg, leg, duty, event, started, deferred)
            if isinstance(done, Attempt):
                return done
            if done == "answered":
                return await self._answered(call, leg, duty, ticket, started, deferred)

    async def _ringing(
        self,
        call: QueueCall,
        agent_leg: str,
        leg: str,
        duty: DutyNumber,
        event: dict[str, Any],
        started: float,
        deferred: list[dict[str, Any]],
    ) -> Attempt | str | None:
        """One event while a duty line rings: "answered", the failed attempt, or None."""
        calls, cid = self.calls, call.call_id
        kind = str(event.get("type"))
        ident = str((event.get("channel") or {}).get("id", ""))
        if kind in GONE and ident == cid:  # the citizen hung up: nothing rings on
            await calls._hang_up(leg)
            call.leg_gone(leg)
            return self._failed(call, leg, duty, "caller_gone", None, started)
        if kind == "Dial" and str((event.get("peer") or {}).get("id", "")) == leg:
            status = str(event.get("dialstatus") or "")
            if status == "ANSWER":
                return "answered"
            if status and status not in ("RINGING", "PROGRESS", "PROCEED"):
                await calls._hang_up(leg)
                return self._failed(call, leg, duty, outcome_of(status), None, started)
            return None
        if kind == "ChannelStateChange" and ident == leg:
            up = (event.get("channel") or {}).get("state") == "Up"
            return "answered" if up else None
        if kind in GONE and ident == leg:
            call.leg_gone(leg)
            code = _cause(event)
            return self._failed(call, leg, duty, outcome_of("", code), code, started)
        if kind in GONE or kind == CONFERENCE or ident == agent_leg:
            deferred.append(event)  # not this attempt's: the talk loop's after it
        return None

    async def _answered(
        self,
        call: QueueCall,
        leg: str,
        duty: DutyNumber,
        ticket: str,
        started: float,
        deferred: list[dict[str, Any]],
    ) -> Attempt:
        calls = self.calls
        media = ["sound:hotline/utility_notice"]
        digits = "".join(ch for ch in ticket if ch.isdigit())
        if digits:
            media += ["sound:hotline/utility_ticket", f"digits:{digits}"]
        media.append("sound:hotline/utility_accept")
        with contextlib.suppress(AriError):
            await calls.ari.post(
                f"/channels/{leg}/play", media=",".join(media), playbackId=f"notice-{leg}"
            )
        until = calls.clock.monotonic() + self.accept_timeout
        while True:  # a key accepts; silence past the time-out is taken as yes (a person is on)
            event = await call.next(until - calls.clock.monotonic())
            if event is None:
                break
            kind = str(event.get("type"))
            ident = str((event.get("channel") or {}).get("id", ""))
            if kind == "ChannelDtmfReceived" and ident == leg:
                if str(event.get("digit")) == ACCEPT_DIGIT:
                    break
                continue
            if kind in GONE and ident == leg:  # answered and hung up at once
                call.leg_gone(leg)
                return self._failed(call, leg, duty, "rejected", _cause(event), started)
            if kind in GONE and ident == call.call_id:
                await calls._hang_up(leg)
                return self._failed(call, leg, duty, "caller_gone", None, started)
            if kind in GONE:
                deferred.append(event)
        with contextlib.suppress(AriError):
            await calls.ari.delete(f"/playbacks/notice-{leg}")
        call.utility_leg = leg
        call.utility_since = calls.clock.monotonic()
        seconds = call.utility_since - started
        self._log(call, "UTILITYCONNECT", duty.number, leg, f"{seconds:.1f}")
        return Attempt(leg, duty.number, "answered", None, round(seconds, 1))

    def _failed(
        self,
        call: QueueCall,
        leg: str,
        duty: DutyNumber,
        outcome: str,
        cause: int | None,
        started: float,
    ) -> Attempt:
        seconds = self.calls.clock.monotonic() - started
        if outcome != "caller_gone":
            log.info("utility: %s %s (%s)", duty.number, outcome, leg)
        self._log(call, "UTILITYEND", duty.number, leg, outcome, str(cause or ""), f"{seconds:.1f}")
        return Attempt(leg, duty.number, outcome, cause, round(seconds, 1))

    async def _record(self, call: QueueCall) -> None:
        """Record the conference through a snoop on the citizen's channel (both ways: what the
        citizen says and hears), so the recording follows the citizen across bridges (ARI
        records no bridged channel itself, and a bridge recording covers one bridge)."""
        calls, cid = self.calls, call.call_id
        if call.recording or calls.stasis is None:
            return
        snoop = f"snoop-{cid}"
        call.extra_legs.add(snoop)
        entered = call.legs_in.setdefault(snoop, asyncio.Event())
        call.legs_done.setdefault(snoop, asyncio.Event())
        calls.stasis.own(snoop, call)
        name = f"conf-{cid}"
        try:
            await calls.ari.post(
                f"/channels/{cid}/snoop",
                spy="both",
                app=calls.app,
                appArgs=f"snoop,{cid}",
                snoopId=snoop,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entered.wait(), calls.leg_enters)
            await calls.ari.post(
                f"/channels/{snoop}/record", name=name, format="wav", ifExists="overwrite"
            )
        except AriError as exc:
            log.warning("utility: the conference of %s is not recorded (%s)", cid, exc)
            return
        call.recording = name
        self._log(call, "UTILITYRECORD", name)

    def finished(self, call: QueueCall) -> None:
        """The call is over: its recording, if any, goes to the ticket (a durable job)."""
        if not call.recording:
            return
        for hook in self.recorded:
            try:
                hook(call.call_id, call.recording)
            except Exception:
                log.exception("utility: a recording hook failed on %s", call.call_id)

    def ended(self, call: QueueCall, leg: str, talked: float) -> None:
        """The utility hung up after talking (or was hung up at the end of the call)."""
        number = next((a.number for a in call.utility_attempts if a.leg == leg), "")
        self._log(call, "UTILITYEND", number, leg, "completed", "", f"{talked:.1f}")

    def _log(self, call: QueueCall, event: str, *data: str) -> None:
        now = self.calls.clock.monotonic()
        self.calls.service.log.add(
            [QueueEvent(now, call.call_id, call.agent_id or "NONE", event, tuple(data))]
        )
