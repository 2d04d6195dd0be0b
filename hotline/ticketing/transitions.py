"""The transition table of the ticket aggregate: every action, the states it may start from,
the states it may lead to, and the rule behind it (after h11's ``_state.py``).

The aggregate (:mod:`hotline.ticketing.ticket`, :mod:`hotline.ticketing.assignment`) checks
the start state here before it acts and its target state here when it moves, so the table is
the truth and :func:`mermaid` draws it: ``hotline api diagram`` prints the diagrams the README
shows (a test keeps the README's copy in step with the table).

A ticket action names ticket states; an action on one unit's part (an assignment) names the
assignment states, and the ticket states it may move the ticket to itself (most move none).
An action that leaves the state where it is says so (``stays``). The ticket state that follows
the assignments (REVIEW once every live reply is in, CALLBACK once every one is accepted) is
derived by ``settle``, an entry of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hotline.ticketing.model import AssignmentState, TicketState

A = AssignmentState
T = TicketState


@dataclass(frozen=True, slots=True)
class Transition:
    rule: str  # the rule that governs the action
    tickets: frozenset[TicketState]  # ticket states it may start from
    to: frozenset[TicketState]  # ticket states it may lead to
    assignments: frozenset[AssignmentState] | None = None  # assignment states, if it acts on one
    to_assignment: frozenset[AssignmentState] = frozenset()
    stays: bool = False  # the action leaves the state it acts on where it is


def _t(
    rule: str,
    tickets: Iterable[TicketState],
    to: Iterable[TicketState],
    assignments: Iterable[AssignmentState] | None = None,
    to_assignment: Iterable[AssignmentState] = (),
    stays: bool = False,
) -> Transition:
    return Transition(
        rule,
        frozenset(tickets),
        frozenset(to),
        frozenset(assignments) if assignments is not None else None,
        frozenset(to_assignment),
        stays,
    )


def _stay(rule: str, tickets: set[TicketState], parts: set[AssignmentState] | None) -> Transition:
    return _t(rule, tickets, () if parts else tickets, parts, parts or (), stays=True)


WORKING = {T.ASSIGNED}  # a unit acts on its part while the ticket is with the units
DRAFTING = {A.SIGNED, A.REPLY_DRAFTED}

# The table: action -> where it may start, where it may lead, the rule behind it.
TRANSITIONS: dict[str, Transition] = {
    "register": _t("I-1", set(), {T.REGISTERED}),
    "reject": _t("I-3", {T.REGISTERED}, {T.REJECTED}),
    "answer_on_spot": _t("I-5", {T.REGISTERED}, {T.CLOSED}),
    "assign": _t("D-1", {T.REGISTERED, T.ASSIGNED, T.REVIEW}, {T.ASSIGNED}),
    "stop_repeat": _t("D-6", {T.REGISTERED}, {T.CLOSED}),
    "transfer_internal": _t("T-1", {T.REGISTERED, T.ASSIGNED}, {T.INTERNAL}),
    "internal_result": _t("T-2", {T.INTERNAL}, {T.CLOSED}),
    "sign": _t("D-3", WORKING, (), {A.ASSIGNED}, {A.SIGNED}),
    "request_return": _t("D-4", WORKING, (), {A.ASSIGNED, A.SIGNED}, {A.RETURN_REQUESTED}),
    # justified: RETURNED (the ticket goes to another unit, or back to the office to assign);
    # not justified: back where it was, for good
    "decide_return": _t(
        "D-4",
        WORKING,
        {T.ASSIGNED, T.REGISTERED},
        {A.RETURN_REQUESTED},
        {A.RETURNED, A.ASSIGNED, A.SIGNED},
    ),
    "request_extension": _stay("H-3", WORKING, DRAFTING),
    "decide_extension": _stay("H-3", WORKING, DRAFTING),
    "draft_reply": _t("H-4", WORKING, (), DRAFTING, {A.REPLY_DRAFTED}),
    "approve_reply": _t("H-4", WORKING, (), {A.REPLY_DRAFTED}, {A.REPLIED, A.SIGNED}),
    "review": _t("H-5", {T.ASSIGNED, T.REVIEW}, (), {A.REPLIED}, {A.ACCEPTED, A.SIGNED}),
    "propose_no_publication": _stay(
        "P-1", {T.ASSIGNED, T.REVIEW, T.CALLBACK}, {A.REPLY_DRAFTED, A.REPLIED, A.ACCEPTED}
    ),
    # derived from the live assignments after every move of one of them (H-5, B-1); once
    # every part is accepted (CALLBACK) nothing a unit does moves the ticket back
    "settle": _t("B-1", {T.ASSIGNED, T.REVIEW}, {T.ASSIGNED, T.REVIEW, T.CALLBACK}),
    "callback": _t("B-1", {T.CALLBACK}, {T.CLOSED, T.DISSATISFIED}),
    "rehandle": _t("B-2", {T.DISSATISFIED}, {T.ASSIGNED}),
    "office_close": _t("B-2", {T.DISSATISFIED}, {T.CLOSED}),
    "decide_publication": _stay("P-1", {T.CLOSED}, None),
    # the emergency plan: marked and decided while the office still holds or has just
    # assigned the ticket (E-1 … E-3); the unit's first response and its finish (E-4)
    "mark_emergency": _stay("E-1", {T.REGISTERED, T.ASSIGNED}, None),
    "emergency_decision": _stay("E-2", {T.REGISTERED, T.ASSIGNED}, None),
    "emergency_response": _stay("E-4", WORKING, {A.ASSIGNED, A.SIGNED}),
    "emergency_finished": _stay("E-4", WORKING, {A.SIGNED, A.REPLY_DRAFTED}),
}

# A new part of a ticket (assign, reassign after a justified return, re-handling) starts here.
NEW_ASSIGNMENT = A.ASSIGNED
# Parts the office ends from outside: an internal transfer withdraws every live part (T-1),
# re-handling withdraws the accepted ones and opens new parts (B-2).
WITHDRAWALS: dict[str, frozenset[AssignmentState]] = {
    "transfer_internal": frozenset(
        {A.ASSIGNED, A.SIGNED, A.RETURN_REQUESTED, A.REPLY_DRAFTED, A.REPLIED, A.ACCEPTED}
    ),
    "rehandle": frozenset({A.ACCEPTED}),
}


def mermaid() -> str:
    """The two state diagrams (tickets, a unit's part) as Mermaid, drawn from the table."""
    ticket = ["stateDiagram-v2", "    [*] --> registered: register (I-1)"]
    ticket += _lines(_ticket_edges()) + [f"    {s.value} --> [*]" for s in (T.CLOSED, T.REJECTED)]
    part = ["stateDiagram-v2", f"    [*] --> {NEW_ASSIGNMENT.value}: assign (D-1)"]
    part += _lines(_part_edges()) + [f"    {s.value} --> [*]" for s in (A.RETURNED, A.WITHDRAWN)]
    return "".join(f"```mermaid\n{chr(10).join(d)}\n```\n\n" for d in (ticket, part))[:-1]


Edges = dict[tuple[str, str], list[str]]


def _ticket_edges() -> Edges:
    edges: Edges = {}
    for name, t in TRANSITIONS.items():
        for src in sorted(t.tickets, key=_order):
            for dst in sorted(t.to, key=_order):
                if src is not dst or t.stays:
                    edges.setdefault((src.value, dst.value), []).append(f"{name} ({t.rule})")
    return edges


def _part_edges() -> Edges:
    edges: Edges = {}
    for name, t in TRANSITIONS.items():
        for src in sorted(t.assignments or (), key=_order):
            for dst in sorted(t.to_assignment, key=_order):
                if (src is dst) is t.stays:
                    edges.setdefault((src.value, dst.value), []).append(f"{name} ({t.rule})")
    for name, sources in WITHDRAWALS.items():
        for src in sorted(sources, key=_order):
            label = f"{name} ({TRANSITIONS[name].rule})"
            edges.setdefault((src.value, A.WITHDRAWN.value), []).append(label)
    return edges


def _lines(edges: Edges) -> list[str]:
    return [f"    {s} --> {d}: {', '.join(labels)}" for (s, d), labels in edges.items()]


def _order(state: TicketState | AssignmentState) -> int:
    return list(type(state)).index(state)
