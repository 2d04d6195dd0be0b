"""The ACD (automatic call distribution) model, pure: agent states, waiting calls, dispatch.

Theory of operation (after h11). :class:`Acd` holds one queue: its agents and its waiting and
connected calls. It does no I/O and reads no clock: every method takes ``now``, seconds on a
monotonic clock, and returns an :class:`Outcome` — what the driver must do (``offers``: ring
these agents on the given channel ids; ``cancels``: hang these agent legs up), the agent state
changes (``changes``, for the console and for logging) and the queue log records
(``records``, named and filled as app_queue does). The driver (a store port, the ARI call
control) applies the outcome, calls :meth:`Acd.dispatch` after every change, and calls
:meth:`Acd.expire`, :meth:`Acd.tick` and :meth:`Acd.dispatch` again at
:meth:`Acd.next_deadline` (ring timeouts, wrap-up ends, skill widening). One model is one
queue; skills do what several queues would.

Agents. An agent moves through :data:`TRANSITIONS`, a table from (state, event type) to the
next state and the only truth about what is allowed: LOGGED_OUT → READY → RINGING (an offer is
out, reserved for one call) → TALKING → WRAP_UP → READY; PAUSED with a reason from READY or
WRAP_UP (and again from PAUSED, to change the reason). An event the table does not allow raises
:class:`AgentStateError` (409) with a code and changes nothing. "Pause / log out after this
call" while RINGING, TALKING or WRAP_UP is recorded (the last one asked wins) and applied when
the agent would next become READY: wrap-up over, or the offer missed or cancelled. An explicit
pause or log-out from WRAP_UP supersedes it. ``idle_since`` is set whenever the agent becomes
READY, except when an offer is cancelled (abandon, reconcile): that agent keeps its place.

Calls. Waiting calls are served by priority class — EMERGENCY (emergency plan, rule E-1), then
UTILITY (utility emergencies, rule H-6), then REPEAT (a repeat caller carrying a ticket), then
NORMAL — and first in, first out within a class (``entered_at``, then ``call_id``). A call wants
skills (``type:help``, ``utility:water``, ``lang:zh``); an agent has skills with a proficiency
1..5. A call waiting less than ``widen_after`` seconds needs every skill at ``min_proficiency``
or better; from ``widen_after`` at proficiency 1 or better; from ``widen_all_after`` any agent
qualifies (skills ignored). Widening drops proficiency first, then the skills entirely, for
every call alike.

Dispatch goes through the waiting calls in order and offers each call with no offer out to the
qualifying READY agent idle longest (``idle_since``, then agent id), preferring agents who have
not missed this call; it stops when no agent is READY. So after a dispatch no waiting call
without an offer has a qualifying READY agent. An offer's id is ``offer-<call>-<n>``, ``n``
counting the call's offers: the driver uses it as the agent leg's ARI channel id, so a repeat
is refused by Asterisk instead of ringing a second phone. An offer unanswered for
``ring_timeout`` seconds or more is expired: the agent is READY again at the back of the idle
line, counts a miss, and after ``max_misses`` misses in a row is PAUSED ("missed_calls"); an
answer or any pause resets the row. The call keeps its place and remembers the agent.

A call ends in the queue by an answer (CONNECT), an abandon (ABANDON, after RINGCANCELED when an
agent was ringing: the offer is cancelled, no miss), or an overflow (EXITWITHTIMEOUT). A
connected call ends with COMPLETECALLER or COMPLETEAGENT; the agent wraps up for
``wrap_up_seconds``. :meth:`Acd.reconcile` takes the ids of every channel Asterisk has
(``GET /channels``) and brings stuck states back to the truth: a waiting caller without a
channel abandoned, a ringing agent without a leg READY, a talking call with a leg gone ended.

Figures. The average handle time starts at ``default_handle_time`` and follows every ended call
(talk time plus the configured wrap-up) as a moving average weighted ``handle_time_weight``. The
estimated wait of a new caller is 0 while more agents are READY than calls are ahead of it,
otherwise (calls ahead − READY agents + 1) × average handle time ÷ staffed agents (READY,
RINGING, TALKING, WRAP_UP), and infinite with no agent staffed. The model knows callers by call
id only; the caller id on ENTERQUEUE comes in masked and is not kept.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from hotline.privacy import mask_phone
from hotline.queue.agent import (
    ON_A_CALL,
    STAFFED,
    Agent,
    AgentEvent,
    AgentState,
    AgentStateError,
    Answer,
    CallEnded,
    Command,
    Login,
    Logout,
    LogoutAfterCall,
    Offer,
    OfferCancelled,
    Pause,
    PauseAfterCall,
    RingNoAnswer,
    WrapUpElapsed,
)

S = AgentState

NONE: Final = "NONE"  # app_queue's placeholder for a missing call id or agent
MISSED_CALLS: Final = "missed_calls"


@dataclass(frozen=True, slots=True)
class AcdConfig:
    min_proficiency: int = 3  # at first a call needs every skill at this proficiency or better
    widen_after: float = 30.0  # then at proficiency 1
    widen_all_after: float = 90.0  # then any agent
    ring_timeout: float = 15.0
    max_misses: int = 2  # misses in a row before the agent is paused
    wrap_up_seconds: float = 10.0
    default_handle_time: float = 180.0
    handle_time_weight: float = 0.2

    def __post_init__(self) -> None:
        if not 1 <= self.min_proficiency <= 5:
            raise ValueError("min_proficiency is 1..5")
        if not 0 <= self.widen_after <= self.widen_all_after:
            raise ValueError("0 <= widen_after <= widen_all_after")
        if self.ring_timeout <= 0 or self.max_misses < 1 or self.wrap_up_seconds < 0:
            raise ValueError("ring_timeout > 0, max_misses >= 1, wrap_up_seconds >= 0")
        if self.default_handle_time <= 0 or not 0 < self.handle_time_weight <= 1:
            raise ValueError("default_handle_time > 0, 0 < handle_time_weight <= 1")


# -- calls --------------------------------------------------------------------------------------
class Priority(enum.IntEnum):
    """Served in this order (lower first)."""

    EMERGENCY = 0  # the emergency plan (rule E-1)
    UTILITY = 1  # utility emergencies (rule H-6)
    REPEAT = 2  # a repeat caller carrying a ticket
    NORMAL = 3


def classify(
    *, emergency_plan: bool = False, utility: bool = False, ticket: str | None = None
) -> Priority:
    if emergency_plan:
        return Priority.EMERGENCY
    if utility:
        return Priority.UTILITY
    return Priority.REPEAT if ticket else Priority.NORMAL


@dataclass(frozen=True, slots=True)
class OfferDecision:
    call_id: str
    agent_id: str
    extension: str
    offer_id: str  # the agent leg's ARI channel id
    node: str = ""  # the backend node that runs the caller (and rings the agent)


@dataclass(slots=True)
class WaitingCall:
    call_id: str  # the caller's ARI channel id
    priority: Priority
    entered_at: float
    skills: frozenset[str]
    ticket: str | None = None
    offered_to: set[str] = field(default_factory=set)  # agents who missed it
    origposition: int = 1
    offers: int = 0  # offers made so far (the n of offer-<call>-<n>)
    offer: OfferDecision | None = None  # the one outstanding offer
    offered_at: float = 0.0
    node: str = ""  # the backend node that runs the caller
    agent: str | None = None  # transferred to this agent: offered to it alone

    @property
    def order(self) -> tuple[int, float, str]:
        return (self.priority, self.entered_at, self.call_id)


@dataclass(frozen=True, slots=True)
class Connected:
    call_id: str
    agent_id: str
    offer_id: str
    entered_at: float
    answered_at: float
    origposition: int


# -- what the model returns ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One queue log record: app_queue's event name and data fields, ``at`` the model's now."""

    at: float
    call_id: str
    agent: str
    event: str
    data: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentChange:
    at: float
    agent_id: str
    before: AgentState
    after: AgentState
    event: str  # the event's class name
    call_id: str | None
    pause_reason: str | None = None  # paused: why


@dataclass(frozen=True, slots=True)
class Outcome:
    records: tuple[QueueEvent, ...] = ()
    offers: tuple[OfferDecision, ...] = ()  # ring these agents, on these channel ids
    cancels: tuple[OfferDecision, ...] = ()  # hang these agent legs up
    changes: tuple[AgentChange, ...] = ()
    calls: tuple[str, ...] = ()  # calls changed that no record names (for a store)


@dataclass(slots=True)
class _Batch:
    records: list[QueueEvent] = field(default_factory=list)
    offers: list[OfferDecision] = field(default_factory=list)
    cancels: list[OfferDecision] = field(default_factory=list)
    changes: list[AgentChange] = field(default_factory=list)

    def done(self) -> Outcome:
        return Outcome(
            tuple(self.records), tuple(self.offers), tuple(self.cancels), tuple(self.changes)
        )


@dataclass(frozen=True, slots=True)
class WaitingView:
    call_id: str
    priority: Priority
    position: int
    wait: float
    ringing: str | None  # the agent an offer is out to


@dataclass(frozen=True, slots=True)
class AgentView:
    agent_id: str
    extension: str
    state: AgentState
    in_state: float
    pause_reason: str | None
    call_id: str | None
    skills: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    waiting: tuple[WaitingView, ...]
    agents: tuple[AgentView, ...]
    handle_time: float


def _s(seconds: float) -> str:
    return str(int(seconds))


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


# -- the model ----------------------------------------------------------------------------------
class Acd:
    def __init__(self, config: AcdConfig | None = None) -> None:
        self.config = config or AcdConfig()
        self.handle_time = self.config.default_handle_time
        self._agents: dict[str, Agent] = {}
        self._waiting: dict[str, WaitingCall] = {}
        self._connected: dict[str, Connected] = {}

    @property
    def agents(self) -> Mapping[str, Agent]:
        return MappingProxyType(self._agents)

    @property
    def waiting(self) -> tuple[WaitingCall, ...]:
        """The waiting calls (ringing ones included) in the order they are served."""
        return tuple(sorted(self._waiting.values(), key=lambda c: c.order))

    def waiting_call(self, call_id: str) -> WaitingCall | None:
        return self._waiting.get(call_id)

    @property
    def connected(self) -> Mapping[str, Connected]:
        return MappingProxyType(self._connected)

    # -- agents ----------------------------------------------------------------------------------
    def command(self, agent_id: str, event: Command, now: float) -> Outcome:
        """What an agent or a supervisor asks for; an unknown agent is LOGGED_OUT."""
        if not isinstance(event, Command):
            raise AgentStateError("not_a_command", f"{type(event).__name__} comes from the call")
        batch = _Batch()
        agent = self._agents.get(agent_id) or Agent(agent_id)
        if isinstance(event, Login):
            holder = self.holder(event.extension)
            if holder is not None and holder != agent_id:
                raise AgentStateError("extension_taken", f"{event.extension} is {holder}'s now")
        self._go(agent, event, now, batch)
        self._agents.setdefault(agent_id, agent)
        return batch.done()

    def holder(self, extension: str) -> str | None:
        """The agent logged in at ``extension``, if any (one agent per phone)."""
        for agent in self._agents.values():
            if agent.extension == extension and agent.state is not S.LOGGED_OUT:
                return agent.agent_id
        return None

    def _go(self, agent: Agent, event: AgentEvent, now: float, batch: _Batch) -> None:
        before, reason, login_at = agent.state, agent.pause_reason, agent.logged_in_at
        call_id = agent.call_id
        after = agent.handle(event, now)
        name, call_id = type(event).__name__, agent.call_id or call_id
        batch.changes.append(
            AgentChange(now, agent.agent_id, before, after, name, call_id, agent.pause_reason)
        )
        batch.records.extend(_agent_records(agent, event, before, reason, login_at, now))
        if before in ON_A_CALL and after is S.READY:
            self._after_call(agent, now, batch)

    def _after_call(self, agent: Agent, now: float, batch: _Batch) -> None:
        deferred = agent.deferred
        if isinstance(deferred, LogoutAfterCall):
            self._go(agent, Logout(), now, batch)
        elif isinstance(deferred, PauseAfterCall):
            self._go(agent, Pause(deferred.reason), now, batch)
        elif agent.misses >= self.config.max_misses:
            self._go(agent, Pause(MISSED_CALLS), now, batch)

    # -- calls -----------------------------------------------------------------------------------
    def enter(
        self,
        call_id: str,
        now: float,
        *,
        priority: Priority = Priority.NORMAL,
        skills: Iterable[str] = (),
        ticket: str | None = None,
        masked_caller: str = "",
        node: str = "",
        for_agent: str | None = None,
        offers: int = 0,
    ) -> Outcome:
        """A caller joins the queue (ENTERQUEUE); the caller id is masked again, never kept.
        ``node`` names the backend node that runs the caller (several nodes share a queue).
        A call an agent transferred comes back with ``for_agent`` (a blind transfer to that
        agent: offered to it alone, whatever its skills) and the ``offers`` it had (its next
        agent leg's channel id is a new one)."""
        if call_id in self._waiting or call_id in self._connected:
            raise AgentStateError("call_exists", f"{call_id} is in the queue already")
        call = WaitingCall(call_id, Priority(priority), now, frozenset(skills), ticket)
        call.node, call.agent, call.offers = node, for_agent, offers
        call.origposition = 1 + sum(1 for c in self._waiting.values() if c.order < call.order)
        self._waiting[call_id] = call
        record = QueueEvent(now, call_id, NONE, "ENTERQUEUE", ("", mask_phone(masked_caller)))
        return Outcome(records=(record,))

    def adopt(self, call_id: str, node: str, now: float) -> Outcome:
        """Another node takes over a waiting caller (its node stopped): the caller keeps its
        place; an offer out is cancelled (RINGCANCELED: the stopped node's leg cannot be
        answered into a bridge) and made again by the dispatch that follows."""
        call = self._waiting.get(call_id)
        if call is None:
            raise AgentStateError("no_such_call", f"{call_id} is not waiting")
        batch = _Batch()
        call.node = node
        if call.offer is not None:
            self._cancel_offer(call, call.offer, now, batch)
        done = batch.done()
        return Outcome(done.records, done.offers, done.cancels, done.changes, (call_id,))

    def qualifies(self, agent: Agent, call: WaitingCall, now: float) -> bool:
        """Whether the agent's skills fit the call after it has waited until ``now``."""
        wait = now - call.entered_at
        if wait >= self.config.widen_all_after:
            return True
        floor = self.config.min_proficiency if wait < self.config.widen_after else 1
        return all(agent.skills.get(skill, 0) >= floor for skill in call.skills)

    def dispatch(self, now: float) -> Outcome:
        """Offer every waiting call that can be served now; ``offers`` says whom to ring."""
        batch = _Batch()
        ready = [a for a in self._agents.values() if a.state is S.READY]
        for call in self.waiting:
            if not ready:
                break
            agent = None if call.offer else self._pick(call, ready, now)
            if agent is not None:
                ready.remove(agent)
                self._offer(call, agent, now, batch)
        return batch.done()

    def _pick(self, call: WaitingCall, ready: list[Agent], now: float) -> Agent | None:
        if call.agent is not None:  # transferred to one agent: that one or nobody
            return next((a for a in ready if a.agent_id == call.agent), None)
        fits = [a for a in ready if self.qualifies(a, call, now)]
        fresh = [a for a in fits if a.agent_id not in call.offered_to] or fits
        return min(fresh, key=lambda a: (a.idle_since, a.agent_id), default=None)

    def _offer(self, call: WaitingCall, agent: Agent, now: float, batch: _Batch) -> None:
        call.offers += 1
        offer_id = f"offer-{call.call_id}-{call.offers}"
        call.offer = OfferDecision(
            call.call_id, agent.agent_id, agent.extension, offer_id, call.node
        )
        call.offered_at = now
        self._go(agent, Offer(call.call_id, offer_id), now, batch)
        batch.offers.append(call.offer)

    def expire(self, now: float) -> Outcome:
        """Offers out for ``ring_timeout`` or more: RINGNOANSWER, ``cancels`` to hang up."""
        batch = _Batch()
        for call in self.waiting:
            if call.offer and now - call.offered_at >= self.config.ring_timeout:
                self._ring_no_answer(call, call.offer, now, batch)
        return batch.done()

    def _ring_no_answer(
        self, call: WaitingCall, offer: OfferDecision, now: float, batch: _Batch
    ) -> None:
        ring = _ms(now - call.offered_at)
        call.offer = None
        call.offered_to.add(offer.agent_id)
        batch.cancels.append(offer)
        batch.records.append(QueueEvent(now, call.call_id, offer.agent_id, "RINGNOANSWER", (ring,)))
        self._go(self._agents[offer.agent_id], RingNoAnswer(call.call_id), now, batch)

    def declined(self, call_id: str, agent_id: str, now: float) -> Outcome:
        """The agent's phone refused the offer before ``ring_timeout`` (busy, unreachable,
        rejected): RINGNOANSWER at once, a miss, and the call is offered on."""
        call = self._waiting.get(call_id)
        if call is None or call.offer is None or call.offer.agent_id != agent_id:
            raise AgentStateError("no_such_call", f"no offer of {call_id} to {agent_id}")
        batch = _Batch()
        self._ring_no_answer(call, call.offer, now, batch)
        return batch.done()

    def answered(self, call_id: str, agent_id: str, now: float) -> Outcome:
        """The agent answered the offer out to it (CONNECT)."""
        call = self._waiting.get(call_id)
        if call is None or call.offer is None or call.offer.agent_id != agent_id:
            raise AgentStateError("no_such_call", f"no offer of {call_id} to {agent_id}")
        batch = _Batch()
        self._go(self._agents[agent_id], Answer(call_id), now, batch)
        del self._waiting[call_id]
        offer_id = call.offer.offer_id
        self._connected[call_id] = Connected(
            call_id, agent_id, offer_id, call.entered_at, now, call.origposition
        )
        data = (_s(now - call.entered_at), offer_id, _s(now - call.offered_at))
        batch.records.append(QueueEvent(now, call_id, agent_id, "CONNECT", data))
        return batch.done()

    def abandon(self, call_id: str, now: float) -> Outcome:
        """The caller hung up while waiting or ringing (ABANDON); an offer out is cancelled."""
        batch = _Batch()
        self._leave(call_id, now, "ABANDON", batch)
        return batch.done()

    def overflow(self, call_id: str, now: float) -> Outcome:
        """The caller leaves for the overflow path (EXITWITHTIMEOUT)."""
        batch = _Batch()
        self._leave(call_id, now, "EXITWITHTIMEOUT", batch)
        return batch.done()

    def _leave(self, call_id: str, now: float, event: str, batch: _Batch) -> None:
        call = self._waiting.get(call_id)
        if call is None:
            raise AgentStateError("no_such_call", f"{call_id} is not waiting")
        position = 1 + self.waiting.index(call)
        if call.offer is not None:
            self._cancel_offer(call, call.offer, now, batch)
        del self._waiting[call_id]
        data = (str(position), str(call.origposition), _s(now - call.entered_at))
        batch.records.append(QueueEvent(now, call_id, NONE, event, data))

    def _cancel_offer(
        self, call: WaitingCall, offer: OfferDecision, now: float, batch: _Batch
    ) -> None:
        ring = _ms(now - call.offered_at)
        call.offer = None
        batch.cancels.append(offer)
        batch.records.append(QueueEvent(now, call.call_id, offer.agent_id, "RINGCANCELED", (ring,)))
        self._go(self._agents[offer.agent_id], OfferCancelled(call.call_id), now, batch)

    def ended(self, call_id: str, now: float, *, by: Literal["caller", "agent"]) -> Outcome:
        """A connected call ended (COMPLETECALLER / COMPLETEAGENT: who hung up); wrap-up."""
        batch = _Batch()
        self._end(call_id, now, by, batch)
        return batch.done()

    def _end(self, call_id: str, now: float, by: str, batch: _Batch) -> None:
        call = self._connected.pop(call_id, None)
        if call is None:
            raise AgentStateError("no_such_call", f"{call_id} is not connected")
        talk = now - call.answered_at
        data = (_s(call.answered_at - call.entered_at), _s(talk), str(call.origposition))
        event = "COMPLETEAGENT" if by == "agent" else "COMPLETECALLER"
        batch.records.append(QueueEvent(now, call_id, call.agent_id, event, data))
        weight, sample = self.config.handle_time_weight, talk + self.config.wrap_up_seconds
        self.handle_time += weight * (sample - self.handle_time)
        agent = self._agents[call.agent_id]
        self._go(agent, CallEnded(call_id), now, batch)
        if self.config.wrap_up_seconds <= 0:
            self._go(agent, WrapUpElapsed(), now, batch)

    def tick(self, now: float) -> Outcome:
        """Wrap-ups over: READY (then what was deferred)."""
        batch = _Batch()
        for agent in list(self._agents.values()):
            over = now - agent.state_since >= self.config.wrap_up_seconds
            if agent.state is S.WRAP_UP and over:
                self._go(agent, WrapUpElapsed(), now, batch)
        return batch.done()

    def reconcile(
        self, live_channel_ids: Collection[str], now: float, grace: float = 0.0
    ) -> Outcome:
        """Bring back to the truth what Asterisk no longer has: ``live_channel_ids`` is every
        channel id it lists, taken after the offers out were placed (a later offer would look
        stuck; offers younger than ``grace`` seconds are left alone — another node may be
        placing them). Waiting callers gone: ABANDON; agent legs gone: READY, not a miss; a leg
        of a connected call gone: COMPLETECALLER / COMPLETEAGENT and wrap-up."""
        live, batch = set(live_channel_ids), _Batch()
        for call in self.waiting:
            if call.call_id not in live:
                self._leave(call.call_id, now, "ABANDON", batch)
            elif call.offer and call.offer.offer_id not in live and now - call.offered_at >= grace:
                self._cancel_offer(call, call.offer, now, batch)
        for talk in list(self._connected.values()):
            by = "caller" if talk.call_id not in live else "agent"
            if talk.call_id not in live or talk.offer_id not in live:
                self._end(talk.call_id, now, by, batch)
        return batch.done()

    # -- figures ---------------------------------------------------------------------------------
    def staffed(self) -> int:
        """Agents logged in and not paused (READY or on a call)."""
        return sum(1 for a in self._agents.values() if a.state in STAFFED)

    def estimated_wait(self, priority: Priority, now: float) -> float:
        """Seconds a caller of this class entering now would wait (see the module's docstring)."""
        staffed = sum(1 for a in self._agents.values() if a.state in STAFFED)
        if staffed == 0:
            return math.inf
        ahead = sum(
            1 for c in self._waiting.values() if c.priority <= priority and c.entered_at <= now
        )
        ready = sum(1 for a in self._agents.values() if a.state is S.READY)
        if ahead < ready:
            return 0.0
        return (ahead - ready + 1) * self.handle_time / staffed

    def snapshot(self, now: float) -> Snapshot:
        waiting = tuple(
            WaitingView(
                c.call_id, c.priority, i, now - c.entered_at, c.offer.agent_id if c.offer else None
            )
            for i, c in enumerate(self.waiting, 1)
        )
        agents = tuple(
            _view(a, now) for a in sorted(self._agents.values(), key=lambda a: a.agent_id)
        )
        return Snapshot(waiting, agents, self.handle_time)

    def agent_view(self, agent_id: str, now: float) -> AgentView | None:
        agent = self._agents.get(agent_id)
        return None if agent is None else _view(agent, now)

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`expire`, :meth:`tick` and :meth:`dispatch` have work next (None: nothing)."""
        times = [c.offered_at + self.config.ring_timeout for c in self._waiting.values() if c.offer]
        times += [
            a.state_since + self.config.wrap_up_seconds
            for a in self._agents.values()
            if a.state is S.WRAP_UP
        ]
        for call in self._waiting.values():
            steps = (self.config.widen_after, self.config.widen_all_after)
            times += [call.entered_at + s for s in steps if call.entered_at + s > now]
        return min(times, default=None)


def _agent_records(
    agent: Agent,
    event: AgentEvent,
    before: AgentState,
    reason: str | None,
    login_at: float | None,
    now: float,
) -> list[QueueEvent]:
    def record(name: str, *data: str) -> QueueEvent:
        return QueueEvent(now, NONE, agent.agent_id, name, data)

    if isinstance(event, Login):
        return [record("AGENTLOGIN", agent.extension)]
    if isinstance(event, Logout):
        return [record("AGENTLOGOFF", agent.extension, _s(now - (login_at or now)))]
    if agent.state is S.PAUSED:
        return [record("PAUSE", agent.pause_reason or "")]
    if before is S.PAUSED:
        return [record("UNPAUSE", reason or "")]  # the reason of the pause that ends
    return []


# -- the state as plain data (a store keeps it as JSON) ----------------------------------------
def dump_agent(a: Agent) -> dict[str, object]:
    deferred = a.deferred
    return {
        "id": a.agent_id,
        "ext": a.extension,
        "skills": dict(a.skills),
        "state": a.state.value,
        "since": a.state_since,
        "idle": a.idle_since,
        "misses": a.misses,
        "call": a.call_id,
        "offer": a.offer_id,
        "reason": a.pause_reason,
        "deferred": None
        if deferred is None
        else ["logout"]
        if isinstance(deferred, LogoutAfterCall)
        else ["pause", deferred.reason],
        "login": a.logged_in_at,
    }


def load_agent(a: Mapping[str, Any]) -> Agent:
    deferred = a["deferred"]
    return Agent(
        a["id"],
        a["ext"],
        dict(a["skills"]),
        AgentState(a["state"]),
        a["since"],
        a["idle"],
        a["misses"],
        a["call"],
        a["offer"],
        a["reason"],
        None
        if deferred is None
        else LogoutAfterCall()
        if deferred[0] == "logout"
        else PauseAfterCall(deferred[1]),
        a["login"],
    )


def dump_waiting(c: WaitingCall) -> dict[str, object]:
    o = c.offer
    return {
        "id": c.call_id,
        "prio": int(c.priority),
        "at": c.entered_at,
        "skills": sorted(c.skills),
        "ticket": c.ticket,
        "missed": sorted(c.offered_to),
        "orig": c.origposition,
        "offers": c.offers,
        "offer": None if o is None else [o.call_id, o.agent_id, o.extension, o.offer_id, o.node],
        "offered_at": c.offered_at,
        "node": c.node,
        "agent": c.agent,
    }


def load_waiting(c: Mapping[str, Any]) -> WaitingCall:
    o = c["offer"]
    return WaitingCall(
        c["id"],
        Priority(c["prio"]),
        c["at"],
        frozenset(c["skills"]),
        c["ticket"],
        set(c["missed"]),
        c["orig"],
        c["offers"],
        None if o is None else OfferDecision(*o),
        c["offered_at"],
        c.get("node", ""),
        c.get("agent"),
    )


def dump_connected(c: Connected) -> list[object]:
    return [c.call_id, c.agent_id, c.offer_id, c.entered_at, c.answered_at, c.origposition]


def dump(acd: Acd) -> dict[str, Any]:
    """Everything the model holds, as JSON-ready data; :func:`load` gives the model back."""
    return {
        "handle_time": acd.handle_time,
        "agents": {k: dump_agent(a) for k, a in acd._agents.items()},
        "waiting": {k: dump_waiting(c) for k, c in acd._waiting.items()},
        "connected": {k: dump_connected(c) for k, c in acd._connected.items()},
    }


def load(config: AcdConfig | None, data: Mapping[str, Any]) -> Acd:
    acd = Acd(config)
    acd.handle_time = float(data.get("handle_time", acd.handle_time))
    acd._agents = {k: load_agent(v) for k, v in data.get("agents", {}).items()}
    acd._waiting = {k: load_waiting(v) for k, v in data.get("waiting", {}).items()}
    acd._connected = {k: Connected(*v) for k, v in data.get("connected", {}).items()}
    return acd


def touched(outcome: Outcome) -> tuple[set[str], set[str]]:
    """The agents and the calls an outcome's change touched: every method of the model names
    what it changes in its outcome (records, offers, cancels, agent changes) — a store writes
    only these."""
    agents = {c.agent_id for c in outcome.changes}
    agents |= {r.agent for r in outcome.records if r.agent != NONE}
    calls = {r.call_id for r in outcome.records if r.call_id != NONE}
    for o in (*outcome.offers, *outcome.cancels):
        agents.add(o.agent_id)
        calls.add(o.call_id)
    calls |= {c.call_id for c in outcome.changes if c.call_id}
    calls |= set(outcome.calls)
    return agents, calls


def _view(a: Agent, now: float) -> AgentView:
    return AgentView(
        a.agent_id,
        a.extension,
        a.state,
        now - a.state_since,
        a.pause_reason,
        a.call_id,
        MappingProxyType(dict(a.skills)),
    )
