"""An agent of the ACD, pure: the state table and what each event does to an agent.

:data:`TRANSITIONS` maps (state, event type) to the next state and is the only truth about what
is allowed: LOGGED_OUT → READY → RINGING (an offer is out, reserved for one call) → TALKING →
WRAP_UP → READY; PAUSED with a reason from READY or WRAP_UP (and again from PAUSED, to change
the reason). An event the table does not allow raises :class:`AgentStateError` (409) with a code
and changes nothing. :mod:`hotline.queue.acd` drives agents with the calls of a queue (see its
theory of operation); nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from hotline.errors import CodedError, Conflict, PayloadError


class AgentStateError(CodedError, Conflict):
    """The ACD refuses: ``code`` names the case (``not_ready``, ``no_such_call``, …)."""


class AgentState(enum.Enum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RINGING = "ringing"
    TALKING = "talking"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


S = AgentState
ON_A_CALL: Final = frozenset({S.RINGING, S.TALKING, S.WRAP_UP})
STAFFED: Final = frozenset({S.READY, S.RINGING, S.TALKING, S.WRAP_UP})


# -- events -------------------------------------------------------------------------------------
class AgentEvent:
    __slots__ = ()


class Command(AgentEvent):
    """An event an agent (or a supervisor) asks for; the others come from calls and timers."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Login(Command):
    extension: str
    skills: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name, level in self.skills.items():
            if not name or not isinstance(level, int) or not 1 <= level <= 5:
                raise PayloadError("skills", f"{name!r}: proficiency is 1..5")
        object.__setattr__(self, "skills", MappingProxyType(dict(self.skills)))


@dataclass(frozen=True, slots=True)
class Ready(Command):
    pass


@dataclass(frozen=True, slots=True)
class Pause(Command):
    reason: str


@dataclass(frozen=True, slots=True)
class Unpause(Command):
    pass


@dataclass(frozen=True, slots=True)
class EndWrapUp(Command):
    pass


@dataclass(frozen=True, slots=True)
class Logout(Command):
    pass


@dataclass(frozen=True, slots=True)
class PauseAfterCall(Command):
    reason: str


@dataclass(frozen=True, slots=True)
class LogoutAfterCall(Command):
    pass


@dataclass(frozen=True, slots=True)
class Offer(AgentEvent):
    call_id: str
    offer_id: str = ""


@dataclass(frozen=True, slots=True)
class Answer(AgentEvent):
    call_id: str


@dataclass(frozen=True, slots=True)
class RingNoAnswer(AgentEvent):
    call_id: str


@dataclass(frozen=True, slots=True)
class OfferCancelled(AgentEvent):
    """The caller hung up while the agent rang, or the agent leg is gone: not a miss."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallEnded(AgentEvent):
    call_id: str


@dataclass(frozen=True, slots=True)
class WrapUpElapsed(AgentEvent):
    pass


Key = tuple[AgentState, type[AgentEvent]]


def _each(states: Iterable[AgentState], event: type[AgentEvent]) -> dict[Key, AgentState]:
    return {(s, event): s for s in states}


# The table: (state, event) -> the next state. Nothing else decides what an agent may do.
TRANSITIONS: Final[Mapping[Key, AgentState]] = MappingProxyType(
    {
        (S.LOGGED_OUT, Login): S.READY,
        (S.READY, Offer): S.RINGING,
        (S.RINGING, Answer): S.TALKING,
        (S.RINGING, RingNoAnswer): S.READY,
        (S.RINGING, OfferCancelled): S.READY,
        (S.TALKING, CallEnded): S.WRAP_UP,
        (S.WRAP_UP, WrapUpElapsed): S.READY,
        (S.WRAP_UP, EndWrapUp): S.READY,
        (S.WRAP_UP, Ready): S.READY,
        (S.PAUSED, Ready): S.READY,
        (S.PAUSED, Unpause): S.READY,
        (S.READY, Pause): S.PAUSED,
        (S.WRAP_UP, Pause): S.PAUSED,
        (S.PAUSED, Pause): S.PAUSED,  # a new reason
        (S.READY, Logout): S.LOGGED_OUT,
        (S.PAUSED, Logout): S.LOGGED_OUT,
        (S.WRAP_UP, Logout): S.LOGGED_OUT,
        **_each(ON_A_CALL, PauseAfterCall),  # deferred: the state stays
        **_each(ON_A_CALL, LogoutAfterCall),
    }
)
EVENT_TYPES: Final = tuple(dict.fromkeys(event for _, event in TRANSITIONS))
CALL_EVENTS: Final = (Answer, RingNoAnswer, OfferCancelled, CallEnded)
_REFUSED: Final[Mapping[type[AgentEvent], str]] = {
    Login: "logged_in",
    Ready: "already_ready",
    Pause: "on_a_call",
    Unpause: "not_paused",
    EndWrapUp: "not_in_wrap_up",
    WrapUpElapsed: "not_in_wrap_up",
    Logout: "on_a_call",
    PauseAfterCall: "not_on_a_call",
    LogoutAfterCall: "not_on_a_call",
    Offer: "not_ready",
    **{e: "no_such_call" for e in CALL_EVENTS},
}


def refusal(state: AgentState, event: AgentEvent) -> AgentStateError:
    kind = type(event)
    code = "logged_out" if state is S.LOGGED_OUT and kind is not Login else _REFUSED[kind]
    if code == "already_ready" and state in (S.RINGING, S.TALKING):
        code = "on_a_call"
    return AgentStateError(code, f"{kind.__name__} is not allowed while {state.value}")


def mermaid() -> str:
    """The agent state diagram as Mermaid, drawn from the table."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.LOGGED_OUT.value}"]
    lines += [f"    {s.value} --> {t.value}: {e.__name__}" for (s, e), t in TRANSITIONS.items()]
    return "\n".join(lines)


@dataclass(slots=True)
class Agent:
    agent_id: str
    extension: str = ""
    skills: dict[str, int] = field(default_factory=dict)
    state: AgentState = S.LOGGED_OUT
    state_since: float = 0.0  # the `now` of the last change of state
    idle_since: float = 0.0  # when it last became READY (longest idle first)
    misses: int = 0  # offers missed in a row
    call_id: str | None = None  # while RINGING, TALKING, WRAP_UP
    offer_id: str | None = None
    pause_reason: str | None = None
    deferred: PauseAfterCall | LogoutAfterCall | None = None
    logged_in_at: float | None = None

    def handle(self, event: AgentEvent, now: float) -> AgentState:
        """Move by the table, or raise :class:`AgentStateError` and change nothing."""
        target = TRANSITIONS.get((self.state, type(event)))
        if target is None:
            raise refusal(self.state, event)
        if isinstance(event, CALL_EVENTS) and event.call_id != self.call_id:
            raise AgentStateError("no_such_call", f"{self.agent_id} is not on {event.call_id}")
        _effect(self, event, now)
        if target is S.READY and not isinstance(event, OfferCancelled):
            self.idle_since = now
        if target in (S.READY, S.PAUSED, S.LOGGED_OUT):
            self.call_id = self.offer_id = None
        if target is not self.state:
            self.state, self.state_since = target, now
        return target


def _effect(agent: Agent, event: AgentEvent, now: float) -> None:
    if isinstance(event, Login):
        agent.extension, agent.skills, agent.logged_in_at = event.extension, dict(event.skills), now
        agent.misses = 0
    elif isinstance(event, Offer):
        agent.call_id, agent.offer_id = event.call_id, event.offer_id
    elif isinstance(event, Answer):
        agent.misses = 0
    elif isinstance(event, RingNoAnswer):
        agent.misses += 1
    elif isinstance(event, PauseAfterCall | LogoutAfterCall):
        agent.deferred = event
    elif isinstance(event, Pause):
        agent.pause_reason, agent.deferred, agent.misses = event.reason, None, 0
    elif isinstance(event, Logout):
        agent.deferred = agent.logged_in_at = None
    if not isinstance(event, Pause | PauseAfterCall | LogoutAfterCall):
        agent.pause_reason = None
