"""The pure ACD model: the agent state table, the order of waiting calls, skills and widening,
dispatch, ring-no-answer, abandon, wrap-up, deferred pause / log-out, reconciliation, figures
and the queue log records; a property over random operations."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import Conflict, PayloadError
from hotline.queue import acd as acd_module
from hotline.queue import agent as agent_module
from hotline.queue.acd import Acd, AcdConfig, Outcome, Priority, classify
from hotline.queue.agent import (
    CALL_EVENTS,
    EVENT_TYPES,
    ON_A_CALL,
    TRANSITIONS,
    Agent,
    AgentEvent,
    AgentState,
    AgentStateError,
    Answer,
    CallEnded,
    EndWrapUp,
    Login,
    Logout,
    LogoutAfterCall,
    Offer,
    OfferCancelled,
    Pause,
    PauseAfterCall,
    Ready,
    RingNoAnswer,
    Unpause,
    WrapUpElapsed,
    mermaid,
)

S = AgentState
HELP = {"type:help": 3}

SAMPLES: dict[type[AgentEvent], AgentEvent] = {
    Login: Login("8001", HELP),
    Ready: Ready(),
    Pause: Pause("lunch"),
    Unpause: Unpause(),
    EndWrapUp: EndWrapUp(),
    Logout: Logout(),
    PauseAfterCall: PauseAfterCall("meeting"),
    LogoutAfterCall: LogoutAfterCall(),
    Offer: Offer("c1", "offer-c1-1"),
    Answer: Answer("c1"),
    RingNoAnswer: RingNoAnswer("c1"),
    OfferCancelled: OfferCancelled("c1"),
    CallEnded: CallEnded("c1"),
    WrapUpElapsed: WrapUpElapsed(),
}
CODES = {
    "logged_out",
    "logged_in",
    "already_ready",
    "on_a_call",
    "not_paused",
    "not_in_wrap_up",
    "not_on_a_call",
    "not_ready",
    "no_such_call",
}
PAIRS = list(itertools.product(AgentState, EVENT_TYPES))


def agent_in(state: AgentState) -> Agent:
    on_call = state in ON_A_CALL
    return Agent(
        "a1",
        "8001",
        dict(HELP),
        state,
        state_since=1.0,
        idle_since=1.0,
        call_id="c1" if on_call else None,
        offer_id="offer-c1-1" if on_call else None,
        pause_reason="lunch" if state is S.PAUSED else None,
        logged_in_at=None if state is S.LOGGED_OUT else 0.0,
    )


def login(acd: Acd, *agents: str, now: float = 0.0, skills: Mapping[str, int] = HELP) -> None:
    for agent_id in agents:
        acd.command(agent_id, Login(f"80{agent_id[-2:]}", skills), now)


def events(outcome: Outcome) -> list[str]:
    return [r.event for r in outcome.records]


def offered(outcome: Outcome) -> list[tuple[str, str]]:
    return [(o.call_id, o.agent_id) for o in outcome.offers]


def talking(acd: Acd, call_id: str, agent_id: str, now: float = 0.0) -> None:
    acd.enter(call_id, now, skills=["type:help"])
    assert offered(acd.dispatch(now)) == [(call_id, agent_id)]
    acd.answered(call_id, agent_id, now + 2)


# -- the table ----------------------------------------------------------------------------------
def test_every_event_type_of_the_table_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize(("state", "kind"), [p for p in PAIRS if p in TRANSITIONS])
def test_a_transition_of_the_table_leads_where_the_table_says(
    state: AgentState, kind: type[AgentEvent]
) -> None:
    agent = agent_in(state)
    target = TRANSITIONS[(state, kind)]
    assert agent.handle(SAMPLES[kind], 5.0) is target
    assert agent.state is target
    assert agent.state_since == (5.0 if target is not state else 1.0)
    if target is S.READY:
        assert agent.call_id is None
        assert agent.idle_since == (1.0 if kind is OfferCancelled else 5.0)


@pytest.mark.parametrize(("state", "kind"), [p for p in PAIRS if p not in TRANSITIONS])
def test_an_event_the_table_does_not_allow_is_refused_and_changes_nothing(
    state: AgentState, kind: type[AgentEvent]
) -> None:
    agent = agent_in(state)
    before = dataclasses.replace(agent)
    with pytest.raises(AgentStateError) as refused:
        agent.handle(SAMPLES[kind], 5.0)
    assert isinstance(refused.value, Conflict) and refused.value.status == 409
    assert refused.value.code in CODES
    assert agent == before


@pytest.mark.parametrize(
    ("state", "event", "code"),
    [
        (S.LOGGED_OUT, Ready(), "logged_out"),
        (S.READY, Login("8001"), "logged_in"),
        (S.READY, Ready(), "already_ready"),
        (S.TALKING, Ready(), "on_a_call"),
        (S.RINGING, Pause("lunch"), "on_a_call"),
        (S.TALKING, Logout(), "on_a_call"),
        (S.READY, Unpause(), "not_paused"),
        (S.PAUSED, EndWrapUp(), "not_in_wrap_up"),
        (S.READY, PauseAfterCall("lunch"), "not_on_a_call"),
        (S.PAUSED, Offer("c1"), "not_ready"),
        (S.READY, Answer("c1"), "no_such_call"),
    ],
)
def test_a_refusal_names_its_case(state: AgentState, event: AgentEvent, code: str) -> None:
    with pytest.raises(AgentStateError) as refused:
        agent_in(state).handle(event, 5.0)
    assert refused.value.code == code


@pytest.mark.parametrize("kind", CALL_EVENTS)
def test_a_call_event_for_another_call_is_refused(kind: type[AgentEvent]) -> None:
    state = next(s for (s, k) in TRANSITIONS if k is kind)
    agent = agent_in(state)
    with pytest.raises(AgentStateError, match="not on c2") as refused:
        agent.handle(kind("c2"), 5.0)
    assert refused.value.code == "no_such_call" and agent.state is state


def test_the_diagram_draws_every_transition() -> None:
    drawn = mermaid()
    for (state, kind), target in TRANSITIONS.items():
        assert f"{state.value} --> {target.value}: {kind.__name__}" in drawn


def test_only_commands_come_through_the_command_entry() -> None:
    acd = Acd()
    login(acd, "a01")
    with pytest.raises(AgentStateError) as refused:
        acd.command("a01", Offer("c1"), 1.0)
    assert refused.value.code == "not_a_command"
    assert acd.agents["a01"].state is S.READY


def test_an_unknown_agent_is_logged_out() -> None:
    acd = Acd()
    with pytest.raises(AgentStateError) as refused:
        acd.command("a01", Pause("lunch"), 1.0)
    assert refused.value.code == "logged_out" and "a01" not in acd.agents


def test_skills_must_have_a_proficiency_of_one_to_five() -> None:
    for level in (0, 6):
        with pytest.raises(PayloadError):
            Login("8001", {"type:help": level})
    assert Login("8001", {"type:help": 1}).skills == {"type:help": 1}


def test_agent_commands_are_logged_as_app_queue_does() -> None:
    acd = Acd()
    login_ = acd.command("a01", Login("8001", HELP), 100.0)
    assert [(r.event, r.agent, r.data) for r in login_.records] == [
        ("AGENTLOGIN", "a01", ("8001",))
    ]
    assert events(acd.command("a01", Pause("lunch"), 110.0)) == ["PAUSE"]
    unpause = acd.command("a01", Unpause(), 120.0)
    assert [(r.event, r.data) for r in unpause.records] == [("UNPAUSE", ("lunch",))]
    logoff = acd.command("a01", Logout(), 130.0)
    assert [(r.event, r.call_id, r.data) for r in logoff.records] == [
        ("AGENTLOGOFF", "NONE", ("8001", "30"))
    ]
    assert [(c.before, c.after) for c in logoff.changes] == [(S.READY, S.LOGGED_OUT)]


# -- order of waiting calls ---------------------------------------------------------------------
def test_a_utility_caller_after_two_ordinary_callers_is_offered_first() -> None:
    # rule H-6: utility emergencies are put straight through
    acd = Acd()
    acd.enter("c1", 0.0)
    acd.enter("c2", 1.0)
    acd.enter("c3", 2.0, priority=Priority.UTILITY)
    login(acd, "a01", now=3.0, skills={})
    assert offered(acd.dispatch(3.0)) == [("c3", "a01")]


def test_emergency_before_utility_before_repeat_before_normal() -> None:
    # rules E-1 and H-6: the emergency plan first, then utility emergencies
    acd = Acd()
    for i, priority in enumerate(
        [Priority.NORMAL, Priority.REPEAT, Priority.UTILITY, Priority.EMERGENCY]
    ):
        acd.enter(f"c{i}", float(i), priority=priority)
    assert [c.call_id for c in acd.waiting] == ["c3", "c2", "c1", "c0"]
    assert [c.origposition for c in sorted(acd.waiting, key=lambda c: c.call_id)] == [1, 1, 1, 1]


def test_classify_follows_the_rules() -> None:
    # rules E-1 and H-6
    assert classify(emergency_plan=True, utility=True) is Priority.EMERGENCY
    assert classify(utility=True, ticket="20261127-0042") is Priority.UTILITY
    assert classify(ticket="20261127-0042") is Priority.REPEAT
    assert classify() is Priority.NORMAL


def test_fifo_within_a_class_then_call_id() -> None:
    acd = Acd()
    acd.enter("c9", 5.0)
    acd.enter("c8", 3.0)
    acd.enter("c7", 3.0)
    login(acd, "a01", "a02", now=6.0, skills={})
    assert offered(acd.dispatch(6.0)) == [("c7", "a01"), ("c8", "a02")]
    assert [c.call_id for c in acd.waiting] == ["c7", "c8", "c9"]


def test_the_agent_idle_longest_is_offered_first() -> None:
    acd = Acd()
    login(acd, "a02", now=0.0)
    login(acd, "a01", now=5.0)
    talking(acd, "c1", "a02", now=6.0)
    acd.ended("c1", 20.0, by="caller")
    acd.tick(30.0)  # a02 ready again at 30, a01 since 5
    acd.enter("c2", 31.0, skills=["type:help"])
    assert offered(acd.dispatch(31.0)) == [("c2", "a01")]


def test_ties_in_idle_time_go_by_agent_id() -> None:
    acd = Acd()
    login(acd, "a02", "a01", now=0.0)
    acd.enter("c1", 1.0)
    assert offered(acd.dispatch(1.0)) == [("c1", "a01")]


# -- skills ---------------------------------------------------------------------------------------
def test_a_call_goes_to_an_agent_with_its_skill_at_the_minimum() -> None:
    acd = Acd()
    login(acd, "a01", now=0.0, skills={"utility:water": 2})  # idle longer, too weak
    login(acd, "a02", now=1.0, skills={"utility:water": 4})
    login(acd, "a03", now=0.5, skills={"type:help": 5})
    acd.enter("c1", 2.0, priority=Priority.UTILITY, skills=["utility:water"])
    assert offered(acd.dispatch(2.0)) == [("c1", "a02")]


def test_skills_widen_after_the_configured_waits() -> None:
    acd = Acd(AcdConfig(widen_after=20.0, widen_all_after=60.0))
    login(acd, "a01", skills={"utility:water": 1})
    acd.enter("c1", 0.0, skills=["utility:water"])
    acd.enter("c2", 0.0, skills=["utility:gas"])
    assert acd.dispatch(19.9).offers == ()
    assert acd.next_deadline(19.9) == 20.0
    assert offered(acd.dispatch(20.0)) == [("c1", "a01")]
    login(acd, "a02", now=21.0, skills={"utility:water": 5})
    assert acd.dispatch(59.9).offers == ()  # c2 wants gas: nobody has it
    assert acd.next_deadline(59.9) == 35.0  # c1's ring timeout, already due
    assert offered(acd.dispatch(60.0)) == [("c2", "a02")]


def test_an_agent_with_every_skill_qualifies_and_one_missing_a_skill_not() -> None:
    acd = Acd()
    login(acd, "a01", skills={"type:help": 5})
    login(acd, "a02", now=1.0, skills={"type:help": 3, "lang:zh": 3})
    acd.enter("c1", 2.0, skills=["type:help", "lang:zh"])
    assert offered(acd.dispatch(2.0)) == [("c1", "a02")]


# -- ring no answer -------------------------------------------------------------------------------
def test_ring_no_answer_goes_to_the_next_agent_and_the_call_keeps_its_place() -> None:
    acd = Acd()
    login(acd, "a01", now=0.0)
    login(acd, "a02", now=1.0)
    acd.enter("c1", 2.0, skills=["type:help"])
    acd.enter("c2", 3.0, skills=["type:help"])
    assert [o.offer_id for o in acd.dispatch(4.0).offers] == ["offer-c1-1", "offer-c2-1"]
    acd.answered("c2", "a02", 10.0)
    assert acd.expire(18.9).cancels == ()
    out = acd.expire(19.0)
    assert [(o.offer_id, o.agent_id) for o in out.cancels] == [("offer-c1-1", "a01")]
    assert [(r.event, r.agent, r.data) for r in out.records] == [
        ("RINGNOANSWER", "a01", ("15000",))
    ]
    a01 = acd.agents["a01"]
    assert (a01.state, a01.misses, a01.idle_since) == (S.READY, 1, 19.0)
    acd.ended("c2", 20.0, by="agent")
    acd.command("a02", EndWrapUp(), 20.5)  # a02 idle since 20.5, a01 since 19 but missed c1
    out = acd.dispatch(21.0)
    assert [(o.offer_id, o.agent_id) for o in out.offers] == [("offer-c1-2", "a02")]
    assert acd.waiting[0].entered_at == 2.0 and acd.waiting[0].offered_to == {"a01"}


def test_an_agent_is_paused_after_the_configured_misses_in_a_row() -> None:
    acd = Acd(AcdConfig(max_misses=2))
    login(acd, "a01")
    acd.enter("c1", 0.0)
    acd.dispatch(0.0)
    acd.expire(15.0)
    assert offered(acd.dispatch(15.0)) == [("c1", "a01")]  # nobody else: offered again
    out = acd.expire(30.0)
    assert events(out) == ["RINGNOANSWER", "PAUSE"]
    assert out.records[-1].data == ("missed_calls",)
    agent = acd.agents["a01"]
    assert (agent.state, agent.pause_reason, agent.misses) == (S.PAUSED, "missed_calls", 0)
    assert acd.dispatch(31.0).offers == ()


def test_an_answer_resets_the_misses() -> None:
    acd = Acd(AcdConfig(max_misses=2))
    login(acd, "a01")
    acd.enter("c1", 0.0)
    acd.dispatch(0.0)
    acd.expire(15.0)
    acd.dispatch(15.0)
    acd.answered("c1", "a01", 16.0)
    assert acd.agents["a01"].misses == 0
    acd.ended("c1", 20.0, by="caller")
    acd.tick(30.0)
    acd.enter("c2", 31.0)
    acd.dispatch(31.0)
    out = acd.expire(46.0)
    assert events(out) == ["RINGNOANSWER"]
    assert acd.agents["a01"].state is S.READY


# -- abandon --------------------------------------------------------------------------------------
def test_abandon_while_waiting_logs_position_and_wait() -> None:
    acd = Acd()
    acd.enter("c1", 0.0)
    acd.enter("c2", 1.0)
    out = acd.abandon("c2", 9.0)
    assert out.cancels == ()
    assert [(r.event, r.call_id, r.data) for r in out.records] == [
        ("ABANDON", "c2", ("2", "2", "8"))
    ]
    assert [c.call_id for c in acd.waiting] == ["c1"]


def test_abandon_while_ringing_cancels_the_offer_and_is_no_miss() -> None:
    acd = Acd()
    login(acd, "a01", now=0.0)
    login(acd, "a02", now=1.0)
    acd.enter("c1", 2.0)
    offer = acd.dispatch(3.0).offers[0]
    out = acd.abandon("c1", 5.0)
    assert out.cancels == (offer,)
    assert [(r.event, r.data) for r in out.records] == [
        ("RINGCANCELED", ("2000",)),
        ("ABANDON", ("1", "1", "3")),
    ]
    a01 = acd.agents["a01"]
    assert (a01.state, a01.misses, a01.idle_since) == (S.READY, 0, 0.0)  # keeps its place
    acd.enter("c2", 6.0)
    assert offered(acd.dispatch(6.0)) == [("c2", "a01")]


def test_an_unknown_call_cannot_be_abandoned_answered_or_ended() -> None:
    acd = Acd()
    login(acd, "a01")
    for act in (
        lambda: acd.abandon("c9", 1.0),
        lambda: acd.answered("c9", "a01", 1.0),
        lambda: acd.ended("c9", 1.0, by="caller"),
    ):
        with pytest.raises(AgentStateError) as refused:
            act()
        assert refused.value.code == "no_such_call"


def test_overflow_logs_exit_with_timeout() -> None:
    acd = Acd()
    acd.enter("c1", 0.0)
    assert [(r.event, r.data) for r in acd.overflow("c1", 40.0).records] == [
        ("EXITWITHTIMEOUT", ("1", "1", "40"))
    ]
    assert acd.waiting == ()


# -- answer, end, wrap-up -----------------------------------------------------------------------
def test_enter_connect_complete_with_app_queue_fields() -> None:
    acd = Acd()
    login(acd, "a01")
    enter = acd.enter("c1", 10.0, masked_caller="13812345678")
    assert enter.records[0].data == ("", "138****5678")
    acd.dispatch(12.0)
    connect = acd.answered("c1", "a01", 15.5)
    assert [(r.event, r.agent, r.data) for r in connect.records] == [
        ("CONNECT", "a01", ("5", "offer-c1-1", "3"))
    ]
    complete = acd.ended("c1", 75.5, by="caller")
    assert [(r.event, r.data) for r in complete.records] == [("COMPLETECALLER", ("5", "60", "1"))]
    assert acd.agents["a01"].state is S.WRAP_UP


def test_wrap_up_then_ready_on_tick() -> None:
    acd = Acd(AcdConfig(wrap_up_seconds=10.0))
    login(acd, "a01")
    talking(acd, "c1", "a01")
    assert events(acd.ended("c1", 50.0, by="agent")) == ["COMPLETEAGENT"]
    assert acd.next_deadline(50.0) == 60.0
    assert acd.tick(59.9).changes == ()
    out = acd.tick(60.0)
    assert [(c.before, c.after, c.event) for c in out.changes] == [
        (S.WRAP_UP, S.READY, "WrapUpElapsed")
    ]
    assert acd.agents["a01"].idle_since == 60.0 and acd.agents["a01"].call_id is None


def test_end_wrap_up_early_and_no_wrap_up_at_all() -> None:
    acd = Acd()
    login(acd, "a01")
    talking(acd, "c1", "a01")
    acd.ended("c1", 50.0, by="agent")
    acd.command("a01", EndWrapUp(), 52.0)
    assert acd.agents["a01"].state is S.READY
    none = Acd(AcdConfig(wrap_up_seconds=0.0))
    login(none, "a01")
    talking(none, "c1", "a01")
    none.ended("c1", 50.0, by="caller")
    assert none.agents["a01"].state is S.READY


def test_the_wrong_agent_cannot_answer_an_offer() -> None:
    acd = Acd()
    login(acd, "a01", "a02")
    acd.enter("c1", 0.0)
    acd.dispatch(0.0)
    with pytest.raises(AgentStateError):
        acd.answered("c1", "a02", 1.0)
    assert acd.agents["a01"].state is S.RINGING and acd.agents["a02"].state is S.READY


def test_a_call_cannot_enter_twice() -> None:
    acd = Acd()
    acd.enter("c1", 0.0)
    with pytest.raises(AgentStateError) as refused:
        acd.enter("c1", 1.0)
    assert refused.value.code == "call_exists" and len(acd.waiting) == 1


# -- after this call ------------------------------------------------------------------------------
def test_pause_after_this_call_waits_for_the_end_of_wrap_up() -> None:
    acd = Acd()
    login(acd, "a01")
    talking(acd, "c1", "a01")
    assert acd.command("a01", PauseAfterCall("training"), 10.0).records == ()
    assert acd.agents["a01"].state is S.TALKING
    acd.ended("c1", 20.0, by="caller")
    assert acd.agents["a01"].state is S.WRAP_UP
    out = acd.tick(30.0)
    assert [r.data for r in out.records if r.event == "PAUSE"] == [("training",)]
    assert acd.agents["a01"].state is S.PAUSED and acd.agents["a01"].deferred is None


def test_log_out_after_this_call() -> None:
    acd = Acd()
    login(acd, "a01")
    talking(acd, "c1", "a01")
    acd.command("a01", PauseAfterCall("training"), 10.0)
    acd.command("a01", LogoutAfterCall(), 11.0)  # the last one asked wins
    acd.ended("c1", 20.0, by="caller")
    out = acd.command("a01", EndWrapUp(), 22.0)
    assert events(out) == ["AGENTLOGOFF"]
    assert acd.agents["a01"].state is S.LOGGED_OUT


def test_pause_after_a_call_that_rang_unanswered_applies_then() -> None:
    acd = Acd()
    login(acd, "a01")
    acd.enter("c1", 0.0)
    acd.dispatch(0.0)
    acd.command("a01", PauseAfterCall("lunch"), 1.0)
    out = acd.expire(15.0)
    assert events(out) == ["RINGNOANSWER", "PAUSE"]
    assert acd.agents["a01"].pause_reason == "lunch"


def test_an_explicit_pause_in_wrap_up_supersedes_the_deferred_log_out() -> None:
    acd = Acd()
    login(acd, "a01")
    talking(acd, "c1", "a01")
    acd.command("a01", LogoutAfterCall(), 10.0)
    acd.ended("c1", 20.0, by="caller")
    acd.command("a01", Pause("toilet"), 21.0)
    acd.command("a01", Unpause(), 25.0)
    assert acd.agents["a01"].state is S.READY


# -- reconcile ------------------------------------------------------------------------------------
def test_reconcile_brings_stuck_states_back_to_the_truth() -> None:
    acd = Acd()
    login(acd, "a01", "a02", "a03")
    for call in ("c1", "c2", "c3"):
        acd.enter(call, 0.0)
    acd.dispatch(0.0)  # c1 -> a01, c2 -> a02, c3 -> a03
    acd.answered("c1", "a01", 3.0)
    acd.enter("c4", 4.0)
    everything = {"c1", "offer-c1-1", "c2", "offer-c2-1", "c3", "offer-c3-1", "c4"}
    assert acd.reconcile(everything, 5.0) == Outcome()
    out = acd.reconcile({"c1", "c2", "c3", "offer-c3-1"}, 6.0)  # a01's and a02's legs gone, c4
    assert events(out) == ["RINGCANCELED", "ABANDON", "COMPLETEAGENT"]
    assert {(c.agent_id, c.before, c.after) for c in out.changes} == {
        ("a02", S.RINGING, S.READY),
        ("a01", S.TALKING, S.WRAP_UP),
    }
    assert [c.call_id for c in acd.waiting] == ["c2", "c3"]
    assert acd.waiting[0].offer is None and acd.agents["a02"].misses == 0
    assert acd.connected == {}


# -- offers -----------------------------------------------------------------------------------
def test_offer_ids_are_deterministic_and_a_call_is_never_offered_twice_at_once() -> None:
    def run() -> list[str]:
        acd = Acd()
        login(acd, "a01", "a02")
        acd.enter("c1", 0.0)
        ids = [o.offer_id for o in acd.dispatch(0.0).offers]
        assert acd.dispatch(1.0).offers == ()  # a02 is ready, c1 has an offer out
        acd.expire(15.0)
        ids += [o.offer_id for o in acd.dispatch(15.0).offers]
        return ids

    assert run() == run() == ["offer-c1-1", "offer-c1-2"]


# -- figures --------------------------------------------------------------------------------------
def test_estimated_wait() -> None:
    acd = Acd(AcdConfig(default_handle_time=180.0))
    assert math.isinf(acd.estimated_wait(Priority.NORMAL, 0.0))
    login(acd, "a01", "a02")
    assert acd.estimated_wait(Priority.NORMAL, 0.0) == 0.0
    for call in ("c1", "c2", "c3", "c4", "c5"):
        acd.enter(call, 1.0)
    acd.dispatch(1.0)  # two ringing, three waiting
    assert acd.estimated_wait(Priority.NORMAL, 2.0) == 6 * 180.0 / 2  # 5 ahead, none ready
    assert acd.estimated_wait(Priority.UTILITY, 2.0) == 180.0 / 2


def test_the_handle_time_follows_ended_calls() -> None:
    acd = Acd(AcdConfig(default_handle_time=180.0, handle_time_weight=0.5, wrap_up_seconds=10))
    login(acd, "a01")
    talking(acd, "c1", "a01")  # answered at 2
    acd.ended("c1", 102.0, by="caller")  # 100 s talk + 10 s wrap-up
    assert acd.handle_time == 145.0


def test_snapshot_shows_waiting_calls_and_agents() -> None:
    acd = Acd()
    login(acd, "a01", now=0.0)
    acd.command("a02", Login("8002", {}), 0.0)
    acd.command("a02", Pause("lunch"), 3.0)
    acd.enter("c1", 4.0)
    acd.enter("c2", 5.0, priority=Priority.UTILITY)
    acd.dispatch(6.0)
    snap = acd.snapshot(10.0)
    assert [(w.call_id, w.priority, w.position, w.wait, w.ringing) for w in snap.waiting] == [
        ("c2", Priority.UTILITY, 1, 5.0, "a01"),
        ("c1", Priority.NORMAL, 2, 6.0, None),
    ]
    assert [(a.agent_id, a.state, a.in_state, a.pause_reason) for a in snap.agents] == [
        ("a01", S.RINGING, 4.0, None),
        ("a02", S.PAUSED, 7.0, "lunch"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"min_proficiency": 0},
        {"widen_after": 100.0, "widen_all_after": 90.0},
        {"ring_timeout": 0.0},
        {"max_misses": 0},
        {"handle_time_weight": 0.0},
    ],
)
def test_a_config_out_of_range_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AcdConfig(**bad)


@pytest.mark.parametrize("module", [acd_module, agent_module])
def test_the_model_reads_no_clock_and_does_no_io(module: object) -> None:
    tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"asyncio", "time", "datetime", "redis", "socket", "aiohttp", "random"}


# -- a property over random operations -----------------------------------------------------------
AGENTS = ("a01", "a02", "a03")
AGENT_SKILLS = ({}, {"type:help": 3}, {"type:help": 5, "utility:water": 4}, {"lang:zh": 1})
CALL_SKILLS = ((), ("type:help",), ("utility:water",), ("type:help", "lang:zh"))
COMMANDS = (Ready(), Pause("x"), Unpause(), EndWrapUp(), Logout(), PauseAfterCall("y"))
OPS = ("time", "login", "command", "enter", "dispatch", "answer", "expire", "tick", "abandon")
OPS += ("end", "reconcile", "logout_after")


def check_invariants(acd: Acd) -> None:
    agents = acd.agents
    offers = [c.offer for c in acd.waiting if c.offer]
    ringing = sorted(a.agent_id for a in agents.values() if a.state is S.RINGING)
    assert sorted(o.agent_id for o in offers) == ringing  # one offer per ringing agent
    for offer in offers:
        agent = agents[offer.agent_id]
        assert (agent.call_id, agent.offer_id) == (offer.call_id, offer.offer_id)
    on_talk = {a.agent_id: a.call_id for a in agents.values() if a.state is S.TALKING}
    assert on_talk == {c.agent_id: c.call_id for c in acd.connected.values()}
    busy = [a.call_id for a in agents.values() if a.state in (S.RINGING, S.TALKING)]
    assert len(busy) == len(set(busy))  # no call on two agents
    assert not {c.call_id for c in acd.waiting} & set(acd.connected)


def check_dispatch_complete(acd: Acd, now: float) -> None:
    ready = [a for a in acd.agents.values() if a.state is S.READY]
    for call in acd.waiting:
        if call.offer is None:
            assert not [a.agent_id for a in ready if acd.qualifies(a, call, now)], call


def step(acd: Acd, op: str, now: float, data: st.DataObject, n: int) -> None:
    pick = data.draw
    if op == "login":
        skills = pick(st.sampled_from(AGENT_SKILLS))
        acd.command(pick(st.sampled_from(AGENTS)), Login("8000", skills), now)
    elif op == "command":
        acd.command(pick(st.sampled_from(AGENTS)), pick(st.sampled_from(COMMANDS)), now)
    elif op == "logout_after":
        acd.command(pick(st.sampled_from(AGENTS)), LogoutAfterCall(), now)
    elif op == "enter":
        priority = pick(st.sampled_from(Priority))
        acd.enter(f"c{n}", now, priority=priority, skills=pick(st.sampled_from(CALL_SKILLS)))
    else:
        call_step(acd, op, now, data)


def call_step(acd: Acd, op: str, now: float, data: st.DataObject) -> None:
    offers = [c.offer for c in acd.waiting if c.offer]
    if op == "dispatch":
        acd.dispatch(now)
        check_dispatch_complete(acd, now)
    elif op == "answer" and offers:
        offer = data.draw(st.sampled_from(offers))
        acd.answered(offer.call_id, offer.agent_id, now)
    elif op in ("expire", "tick"):
        getattr(acd, op)(now)
    elif op == "abandon" and acd.waiting:
        acd.abandon(data.draw(st.sampled_from(acd.waiting)).call_id, now)
    elif op == "end" and acd.connected:
        call = data.draw(st.sampled_from(sorted(acd.connected)))
        acd.ended(call, now, by=data.draw(st.sampled_from(("caller", "agent"))))
    elif op == "reconcile":
        ids = [c.call_id for c in acd.waiting] + [o.offer_id for o in offers]
        ids += [i for c in acd.connected.values() for i in (c.call_id, c.offer_id)]
        live = data.draw(st.sets(st.sampled_from(ids))) if ids else set()
        acd.reconcile(live, now)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from([0.0, 10.0]))
def test_random_operations_keep_one_call_per_agent_one_offer_per_call_and_complete_dispatch(
    data: st.DataObject, wrap_up: float
) -> None:
    acd = Acd(AcdConfig(wrap_up_seconds=wrap_up, widen_after=20.0, widen_all_after=50.0))
    now = 0.0
    for n in range(data.draw(st.integers(1, 80))):
        op = data.draw(st.sampled_from(OPS))
        if op == "time":
            now += data.draw(st.floats(0.0, 40.0))
            continue
        before = {a: dataclasses.replace(agent) for a, agent in acd.agents.items()}
        try:
            step(acd, op, now, data, n)
        except AgentStateError:
            assert {a: dataclasses.replace(x) for a, x in acd.agents.items()} == before
        check_invariants(acd)
    acd.dispatch(now)
    check_dispatch_complete(acd, now)
    check_invariants(acd)


def test_a_declined_offer_is_a_miss_at_once_and_the_call_is_offered_on() -> None:
    acd = Acd(AcdConfig(max_misses=1))
    login(acd, "a01", now=0.0)
    login(acd, "a02", now=1.0)
    acd.enter("c1", 2.0, skills=["type:help"])
    acd.dispatch(2.0)
    out = acd.declined("c1", "a01", 3.5)  # busy: no need to wait for the ring time-out
    assert [(r.event, r.agent, r.data) for r in out.records] == [
        ("RINGNOANSWER", "a01", ("1500",)),
        ("PAUSE", "a01", ("missed_calls",)),
    ]
    assert [o.offer_id for o in out.cancels] == ["offer-c1-1"]
    assert acd.agents["a01"].state is S.PAUSED  # max_misses=1
    assert offered(acd.dispatch(3.5)) == [("c1", "a02")]
    with pytest.raises(Conflict):
        acd.declined("c1", "a01", 4.0)  # the offer out is a02's now


def test_staffed_counts_agents_logged_in_and_not_paused() -> None:
    acd = Acd()
    assert acd.staffed() == 0
    login(acd, "a01", "a02", "a03")
    acd.command("a03", Pause("lunch"), 1.0)
    talking(acd, "c1", "a01", 2.0)
    assert acd.staffed() == 2


def test_one_agent_per_extension_until_it_logs_out() -> None:
    acd = Acd()
    acd.command("a01", Login("8001"), 0.0)
    with pytest.raises(Conflict) as refused:
        acd.command("a02", Login("8001"), 1.0)
    assert refused.value.code == "extension_taken"  # type: ignore[attr-defined]
    assert "a02" not in acd.agents
    acd.command("a01", Logout(), 2.0)
    acd.command("a02", Login("8001"), 3.0)
    assert acd.holder("8001") == "a02"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=40))
def test_the_state_dumped_and_loaded_is_the_same_model(steps: list[int]) -> None:
    acd = Acd(AcdConfig(max_misses=2, wrap_up_seconds=5))
    login(acd, "a01", "a02", "a03")
    now = 1.0
    for i, step in enumerate(steps):
        now += step
        call = f"c{i}"
        acd.enter(
            call, now, priority=Priority(step % 4), skills=["type:help"], ticket="T" * (i % 2)
        )
        acd.dispatch(now)
        waiting = acd.waiting
        if step % 3 == 0 and waiting and waiting[0].offer:
            agent_id = waiting[0].offer.agent_id
            acd.answered(waiting[0].call_id, agent_id, now)
            acd.command(agent_id, PauseAfterCall("lunch"), now)  # a deferred pause kept too
        acd.expire(now + step)
        acd.tick(now + step)
        copy = acd_module.load(acd.config, acd_module.dump(acd))
        assert copy.snapshot(now) == acd.snapshot(now)
        assert acd_module.dump(copy) == acd_module.dump(acd)
        assert copy.next_deadline(now) == acd.next_deadline(now)
