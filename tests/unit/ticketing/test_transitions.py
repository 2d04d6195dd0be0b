"""The transition table names every action's target state; the aggregate keeps to it and the
README draws it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.ticketing.model import AssignmentState, CallbackResult, TicketEvent
from hotline.ticketing.ticket import Ticket
from hotline.ticketing.transitions import TRANSITIONS, A, T, mermaid
from tests.unit.ticketing.conftest import AGENT, DISPATCHER, REVIEWER, WATER_HANDLER, World
from tests.unit.ticketing.test_ticket_rules import to_callback

README = Path(__file__).resolve().parents[3] / "README.md"
PART_STATES = {s.value for s in AssignmentState}


def test_the_readme_shows_the_diagrams_the_table_draws() -> None:
    # refresh with: hotline api diagram
    assert mermaid() in README.read_text(encoding="utf-8")


def test_a_target_the_table_does_not_name_is_refused() -> None:
    world = World()
    t = world.register()
    with pytest.raises(AssertionError, match="no reject to closed"):
        t._go("reject", T.CLOSED)  # reject leads to REJECTED only
    assert t.state is T.REGISTERED
    t.assign(world.ctx(DISPATCHER), ["water"])
    a = t.assignment_for("water")
    assert a is not None
    with pytest.raises(AssertionError, match="no sign to replied"):
        t._move(world.ctx(WATER_HANDLER), a, "sign", "D-3", A.REPLIED)
    assert a.state is A.ASSIGNED


def _check(event: TicketEvent) -> None:
    """An event's before/after is an edge of the table (an event named after its action)."""
    if event.action not in TRANSITIONS:
        return  # reassign / await_reassignment / three_way_call: recorded under their action
    t = TRANSITIONS[event.action]
    if event.action == "decide_publication":  # before/after are the publication's (P-1)
        assert event.after in ("published", "unpublished")
        return
    if event.before in PART_STATES and "assignment" in event.data:
        assert t.assignments is not None and AssignmentState(event.before) in t.assignments
        after = AssignmentState(event.after)
        assert (after.value == event.before) if t.stays else (after in t.to_assignment), event
        return
    if event.action != "register":
        assert T(event.before) in t.tickets, event
    assert T(event.after) in t.to or (t.stays and event.after == event.before), event


def test_every_event_of_a_whole_life_is_an_edge_of_the_table() -> None:
    world = World()
    t = world.register()
    to_callback(world, t, ("water", "roads"))
    t.callback(world.ctx(AGENT), CallbackResult.UNSATISFIED, "还是不亮")
    t.rehandle(world.ctx(REVIEWER), note="再查")
    to_callback(world, t, ("water", "roads"))
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED)
    t.decide_publication(world.ctx(REVIEWER))
    seen = {e.action for e in t.events}
    assert {"register", "assign", "sign", "draft_reply", "approve_reply", "review"} <= seen
    assert {"settle", "callback", "rehandle", "decide_publication"} <= seen
    for event in t.events:
        _check(event)
    assert isinstance(t, Ticket) and t.state is T.CLOSED
