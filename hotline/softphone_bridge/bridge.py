"""The softphone bridge: agents' consoles, their live sessions, what is pushed to them and the
commands they send.

What an agent's console hears comes from the queue: each agent state change (a listener of the
:class:`~hotline.queue.service.QueueService`) becomes an ``agent_state`` message, and each
phone that starts ringing (a hook of :class:`~hotline.queue.calls.QueueCalls`) a ``pop`` — the
caller's number, the caller's tickets, what the IVR learned, the routing table (rule D-2), the
time waited — updated to ``answered`` when the agent takes the call. Messages go through the
agent's :class:`~hotline.softphone_bridge.outbox.Outbox`, which numbers and keeps them: a
console that reconnects gets what it missed. One agent's messages are made in the order their
causes came (one lane per agent).

A session is one console's socket (:mod:`hotline.softphone_bridge.ws`); an agent has one live
session: a second one takes over only when it asks to, and the first is told why and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hotline.agi.ari import AriPort
from hotline.background import Background
from hotline.clock import Clock
from hotline.errors import AriError
from hotline.queue.acd import AgentChange
from hotline.queue.agent import AgentState
from hotline.queue.calls import QueueCalls, Ringing
from hotline.queue.conference import Result as ConferenceResult
from hotline.queue.log import Figures
from hotline.queue.presence import AgentPresence
from hotline.queue.service import QueueService
from hotline.queue.views import agent_json, waiting_json
from hotline.softphone_bridge.outbox import Message, Outbox
from hotline.softphone_bridge.protocol import (
    GOING_AWAY,
    TAKEN_OVER,
    TOO_SLOW,
    Command,
    ProtocolError,
)
from hotline.softphone_bridge.remote import RemoteControl, run_control
from hotline.ticketing.model import Actor, Role
from hotline.ticketing.queries import Summary
from hotline.ticketing.users import User

log = logging.getLogger(__name__)
CLOSED_STATES = ("closed", "rejected")
SEND_QUEUE = 1000  # messages waiting for a slow console; more: it is closed (and resumes)
PopSource = Callable[[Actor, str, str], Awaitable[list[Summary]]]  # actor, call id, number
UnitNames = Callable[[], Awaitable[Mapping[str, str]]]
TodayFigures = Callable[[], Awaitable[Figures]]
WATCHERS = (Role.SUPERVISOR, Role.DUTY_LEADER)  # consoles that watch the floor: the queue view
SUPERVISOR_EVERY = 2.0  # seconds between the supervisors' queue views
FIGURES_EVERY = 10.0  # seconds today's figures are reused


def _ticket(summary: Summary, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "number": summary.number,
        "type": summary.type,
        "state": summary.state,
        "unit": summary.lead_unit,
        "unit_name": names.get(summary.lead_unit or "", None),
        "registered_at": summary.registered_at.isoformat(),
        "handle_due": summary.handle_due.isoformat() if summary.handle_due else None,
    }


@dataclass(frozen=True, slots=True)
class Closing:
    code: int
    reason: str


@dataclass(eq=False)
class Session:
    """One console's socket: what it is sent goes through a bounded queue, in order."""

    user: User
    outgoing: asyncio.Queue[Message | Closing] = field(
        default_factory=lambda: asyncio.Queue(SEND_QUEUE + 1)  # room for the last word
    )
    unsubscribe: Callable[[], None] | None = None
    closing: Closing | None = None  # the socket is to be closed (taken over, revoked, …)

    @property
    def agent_id(self) -> str:
        return self.user.actor.user_id

    def push(self, message: Message) -> bool:
        """Queue a message; False when the console is too far behind (it must resume)."""
        if self.outgoing.qsize() >= SEND_QUEUE:
            return False
        self.outgoing.put_nowait(message)
        return True

    def finish(self, code: int, reason: str) -> None:
        """After what is queued, the socket is closed with ``code``."""
        with contextlib.suppress(asyncio.QueueFull):
            self.outgoing.put_nowait(Closing(code, reason))


class Bridge:
    def __init__(
        self,
        queue: QueueService,
        presence: AgentPresence,
        outbox: Outbox,
        clock: Clock,
        *,
        pop_source: PopSource | None = None,
        unit_names: UnitNames | None = None,
        routing: Mapping[str, str] | None = None,
        ari: AriPort | None = None,
        calls: QueueCalls | None = None,
        wrap_up_seconds: float = 0.0,
        today: TodayFigures | None = None,
    ) -> None:
        self.ari, self.calls = ari, calls
        self.remote: RemoteControl | None = None  # with several nodes
        self.wrap_up_seconds, self.today = wrap_up_seconds, today
        self._figures: tuple[float, Figures | None] = (-math.inf, None)
        self.queue, self.presence, self.outbox, self.clock = queue, presence, outbox, clock
        self.pop_source, self.unit_names = pop_source, unit_names
        self.routing = {
            category: [u.strip() for u in units.split(",") if u.strip()]
            for category, units in (routing or {}).items()
        }
        self.sessions: dict[str, Session] = {}
        self.pops: dict[str, Message] = {}  # agent -> the pop of its current call
        self.background = Background("softphone bridge")
        self._lanes: dict[str, asyncio.Lock] = {}
        queue.listeners.append(self.changed)

    # -- what the queue tells -----------------------------------------------------------------
    def changed(self, change: AgentChange) -> None:
        """The queue's listener: an agent's state changed (runs in the agent's lane)."""
        self._in_lane(change.agent_id, self._state(change), f"state of {change.agent_id}")

    def ringing(self, rung: Ringing) -> None:
        """The call control's hook: an agent's phone rings for a caller."""
        self._in_lane(rung.agent_id, self._pop(rung), f"pop {rung.offer_id}")

    def _in_lane(self, agent_id: str, work: Awaitable[None], what: str) -> None:
        lane = self._lanes.setdefault(agent_id, asyncio.Lock())

        async def run() -> None:
            async with lane:  # tasks start in the order they were made: so do their turns
                await work

        self.background.submit(run(), what)

    async def _state(self, change: AgentChange) -> None:
        message = {  # what changed, not what is now (a later change may be made already)
            "type": "agent_state",
            "agent": change.agent_id,
            "state": change.after.value,
            "before": change.before.value,
            "event": change.event,
            "call": change.call_id,
            "pause_reason": change.pause_reason if change.after is AgentState.PAUSED else None,
            "at": change.at,
        }
        await self.outbox.publish(change.agent_id, message)
        pop = self.pops.get(change.agent_id)
        after = change.after
        if pop is None:
            return
        phase = {AgentState.TALKING: "answered", AgentState.WRAP_UP: "ended"}.get(after)
        if phase and pop["call"] == change.call_id and pop["phase"] != phase:
            self.pops[change.agent_id] = pop = {**pop, "phase": phase}
            await self.outbox.publish(change.agent_id, pop)
        elif after in (AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT):
            self.pops.pop(change.agent_id, None)  # the call and its wrap-up are over

    async def _pop(self, rung: Ringing) -> None:
        current = self.pops.get(rung.agent_id)
        if current is not None and current["call"] == rung.call_id:
            return  # idempotent per call: rung again after a miss, the same pop
        context = rung.context
        actor = Actor(rung.agent_id, Role.AGENT)
        tickets: list[Summary] = []
        history_error = None
        if self.pop_source is not None:
            try:
                tickets = await self.pop_source(actor, rung.call_id, rung.caller)
            except Exception as exc:  # the database is down: the pop goes out without history
                log.warning("softphone: no history for the pop of %s (%s)", rung.call_id, exc)
                history_error = "unavailable"
        names: Mapping[str, str] = {}
        if tickets and self.unit_names is not None:
            with contextlib.suppress(Exception):
                names = await self.unit_names()
        pop = {
            "type": "pop",
            "call": rung.call_id,
            "phase": "ringing",
            "caller": rung.caller,
            "request_type": context.get("type") or None,
            "priority": context.get("priority") or None,
            "utility": context.get("utility") or None,
            "ivr_path": context.get("path") or None,
            "ticket": context.get("ticket") or None,
            "waited": round(rung.waited, 1),
            "open_tickets": [_ticket(t, names) for t in tickets if t.state not in CLOSED_STATES],
            "earlier_tickets": [_ticket(t, names) for t in tickets if t.state in CLOSED_STATES],
            "history": history_error or "ok",
            "routing": self.routing,
        }
        self.pops[rung.agent_id] = pop
        await self.outbox.publish(rung.agent_id, pop)

    def utility_result(self, agent_id: str, result: ConferenceResult) -> None:
        """The call control's hook: a three-way call connected or failed (rule H-6). The agent
        is told; when no duty number answered, the supervisors are told too."""
        message: Message = {
            "type": "utility",
            "call": result.call_id,
            "utility": result.utility,
            "connected": result.connected,
            "attempts": [
                {"number": a.number, "outcome": a.outcome, "seconds": a.seconds}
                for a in result.attempts
            ],
        }
        watchers = [] if result.connected else self._watchers()
        for user_id in ([agent_id] if agent_id else []) + watchers:
            self._in_lane(user_id, self._publish(user_id, message), f"utility {result.call_id}")

    def _watchers(self) -> list[str]:
        return sorted(
            {s.user.actor.user_id for s in self.sessions.values() if s.user.actor.role in WATCHERS}
        )

    async def _publish(self, user_id: str, message: Message) -> None:
        await self.outbox.publish(user_id, dict(message))

    # -- sessions -----------------------------------------------------------------------------
    async def open(self, session: Session, last_seq: int | None, take_over: bool) -> None:
        """A console said hello: it becomes the agent's session (or is refused with
        ``session_active``), gets what it missed since ``last_seq`` and its current state."""
        agent_id = session.agent_id
        old = self.sessions.get(agent_id)
        if old is not None and old is not session:
            if not take_over:
                raise ProtocolError(
                    "session_active", "another console is connected: send take_over to move here"
                )
            self.end(old)
            old.push({"type": "taken_over", "seq": await self.outbox.last(agent_id)})
            old.finish(TAKEN_OVER, "taken over by another console")
        self.sessions[agent_id] = session
        last = await self.outbox.last(agent_id)
        missed = [] if last_seq is None else await self.outbox.since(agent_id, last_seq)
        welcome = {
            "type": "welcome",
            "seq": last,
            "agent": agent_id,
            "role": session.user.actor.role.value,
            "name": session.user.name,
            "resumed": last_seq is not None and missed is not None,
            "reset": last_seq is not None and last_seq > last,  # the backend's numbers restarted
            "wrap_up_seconds": self.wrap_up_seconds,
        }
        session.push(welcome)
        pending: list[Message] = []
        session.unsubscribe = self.outbox.subscribe(agent_id, pending.append)
        for message in missed or []:
            session.push(message)
        session.push(await self.current(agent_id))
        seen = max([last, *(m["seq"] for m in missed or [])])
        for message in pending:  # published while the above ran
            if message["seq"] > seen:
                session.push(message)
        session.unsubscribe()
        session.unsubscribe = self.outbox.subscribe(agent_id, lambda m: self._deliver(session, m))

    def _deliver(self, session: Session, message: Message) -> None:
        if not session.push(message):
            log.warning("softphone: console of %s too far behind; closed", session.agent_id)
            self.end(session)
            session.finish(TOO_SLOW, "too far behind: reconnect with last_seq")

    def end(self, session: Session) -> None:
        """The session is over (closed, or taken over): it hears nothing more."""
        if session.unsubscribe is not None:
            session.unsubscribe()
            session.unsubscribe = None
        if self.sessions.get(session.agent_id) is session:
            del self.sessions[session.agent_id]

    async def current(self, agent_id: str) -> Message:
        view = await self.queue.agent(agent_id)
        return {
            "type": "state",
            "seq": await self.outbox.last(agent_id),
            **agent_json(view, agent_id),
            "pop": await self._current_pop(agent_id, view.call_id if view else None),
        }

    async def _current_pop(self, agent_id: str, call_id: str | None) -> Message | None:
        """The pop of the agent's call: made here, or the last one kept for that call (another
        node made it: the one that runs the caller)."""
        if call_id is None:
            return None
        mine = self.pops.get(agent_id)
        if mine is not None and mine["call"] == call_id:
            return mine
        kept = await self.outbox.kept(agent_id)
        pops = [m for m in kept if m.get("type") == "pop" and m.get("call") == call_id]
        return pops[-1] if pops else None

    # -- commands -----------------------------------------------------------------------------
    async def command(self, user: User, command: Command) -> Message:
        """Run an agent's command (from its console or the HTTP API); the reply (``ok`` with
        the agent's state), or raises."""
        agent_id, kind = user.actor.user_id, command.type
        if user.actor.role is not Role.AGENT and kind not in ("ping",):
            raise ProtocolError("role_forbidden", "only agents take calls")
        if kind == "ping":
            return {"type": "pong"}
        queue, fields, after_call = self.queue, command.fields, command.flag("after_call")
        if kind == "ready":
            await queue.ready(agent_id)
        elif kind == "pause":
            await queue.pause(agent_id, fields["reason"], after_call=after_call)
        elif kind in ("unpause", "end_wrap_up"):
            await (queue.unpause if kind == "unpause" else queue.end_wrap_up)(agent_id)
        elif kind == "hang_up":
            await self._hang_up(agent_id, fields["call"])
        elif kind in ("hold", "unhold", "transfer", "utility"):
            await self._control(agent_id, command)
        elif kind == "logout":
            await queue.logout(agent_id, after_call=after_call)
            if not after_call:
                await self.presence.logout(agent_id)
        else:
            raise ProtocolError("unknown_type", f"{kind} is not handled")
        return {"type": "ok", **agent_json(await queue.agent(agent_id), agent_id)}

    async def _control(self, agent_id: str, command: Command) -> None:
        """Hold, unhold, transfer: the call control of the node that runs the caller."""
        call_id = command.fields["call"]
        view = await self.queue.agent(agent_id)
        if view is None or view.call_id != call_id:
            raise ProtocolError("not_your_call", "that call is not this agent's call")
        if view.state is not AgentState.TALKING:
            raise ProtocolError("not_talking", "hold or transfer a call that is answered")
        fields: dict[str, Any] = {}
        if command.type == "utility":
            fields["utility"] = command.fields["utility"]
            fields["ticket"] = command.fields.get("ticket") or ""
        if command.type == "transfer":
            fields["to"] = command.fields["to"]
            if fields["to"] == "agent":
                fields["agent"] = await self._agent_at(command.fields["extension"], agent_id)
        calls = self.calls
        if calls is None:
            raise ProtocolError("switch_unavailable", "no call control (ARI is not set up)")
        if call_id in calls.calls:
            await run_control(calls, command.type, call_id, fields)
        elif self.remote is not None:  # another node runs the caller: it does it
            await self.remote.ask(command.type, call_id, fields)
        else:
            raise ProtocolError("call_elsewhere", "the call runs on another backend node")

    async def _agent_at(self, extension: str, caller_agent: str) -> str:
        snapshot = await self.queue.snapshot()
        found = next(
            (
                a.agent_id
                for a in snapshot.agents
                if a.extension == extension and a.state is not AgentState.LOGGED_OUT
            ),
            None,
        )
        if found is None:
            raise ProtocolError("no_such_agent", f"no agent on duty at {extension}")
        if found == caller_agent:
            raise ProtocolError("bad_transfer", "a call is not transferred to its own agent")
        return found

    async def _hang_up(self, agent_id: str, call_id: str) -> None:
        view = await self.queue.agent(agent_id)
        if view is None or view.call_id != call_id:
            raise ProtocolError("not_your_call", "that call is not this agent's call")
        if view.state is not AgentState.TALKING or self.ari is None:
            raise ProtocolError("not_talking", "hang up a call that is answered")
        try:  # the caller's side goes: the queue ends the call and the agent's leg
            await self.ari.delete(f"/channels/{call_id}")
        except AriError as exc:
            if exc.status != 404:  # gone already: what was asked
                raise ProtocolError("switch_unavailable", "the switch did not answer") from exc

    # -- supervisors -------------------------------------------------------------------------
    async def queue_view(self) -> Message:
        """The queue as a supervisor sees it: waiting calls, agents by state, today's figures."""
        snapshot = await self.queue.snapshot()
        figures = await self._today()
        return {
            "type": "queue",
            "waiting": waiting_json(snapshot),
            "agents": [
                agent_json(a, a.agent_id)
                for a in snapshot.agents
                if a.state is not AgentState.LOGGED_OUT
            ],
            "today": {
                "answered": figures.answered if figures else None,
                "abandoned": figures.abandoned if figures else None,
                "service_level": figures.service_level if figures else None,
            },
        }

    async def _today(self) -> Figures | None:
        at, cached = self._figures
        now = self.clock.monotonic()
        if self.today is not None and now - at >= FIGURES_EVERY:
            try:
                cached = await self.today()
            except Exception as exc:  # the database is away: the last figures stay
                log.warning("softphone: no figures for today (%s)", type(exc).__name__)
            self._figures = (now, cached)
        return cached

    async def run(self) -> None:
        """Push the queue view to every supervisor's console every ``SUPERVISOR_EVERY`` s."""
        while True:
            supervisors = [s for s in self.sessions.values() if s.user.actor.role in WATCHERS]
            if supervisors:
                try:
                    view = await self.queue_view()
                except Exception as exc:
                    log.warning("softphone: no queue view (%s)", type(exc).__name__)
                else:
                    for session in supervisors:
                        seq = await self.outbox.last(session.agent_id)
                        session.push({**view, "seq": seq})
            await self.clock.sleep(SUPERVISOR_EVERY)

    async def close(self) -> None:
        """Shutdown: every session is told the backend goes away."""
        for session in list(self.sessions.values()):
            self.end(session)
            session.finish(GOING_AWAY, "the backend is shutting down")
        await self.background.close(1.0)
