"""The SLA watch, pure: which timers a ticket needs now, who hears of them, what they say.

Theory of operation. Every open deadline of a ticket (rules D-1, D-3, H-1, B-1, E-3, E-4) wants
two durable timers: a **reminder** a configured time before it (working time for working-time
stages, the wall clock for the emergency plan's minutes, rule C-4) and an **overdue** mark at
it. The emergency plan adds **alerts** that fire at once: the duty leader when a ticket is marked
(E-2), the unit's handler and the dispatchers when the decision is made (E-3). :func:`plan` maps
a ticket to the timers it wants, each with a key that names the ticket, the part (the ticket or
one assignment), the stage, what it does and the deadline's due time — so a deadline that moves
(an extension, a send-back, a reassignment) wants new keys, and a stage done in time wants none.
:mod:`hotline.ticketing.sla_watch` keeps the jobs table in step with this plan in the
transaction of every ticket change, and fires the timers.

Who hears (:func:`audiences`) and against whom a miss counts (:func:`party`, rule S-5) follow
the stage: the office's stages (assign, review, callback, emergency assign) are the office's;
a unit's (sign, handle, emergency response and result) are the unit's, and its handler's where
one is named. No text here names the citizen, a phone number or the request's content (Y-1).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from hotline.errors import CalendarError
from hotline.ticketing.calendar import WorkingCalendar
from hotline.ticketing.model import (
    AssignmentState,
    Deadline,
    EmergencyGround,
    TicketState,
    TicketType,
)
from hotline.ticketing.sla import Stage
from hotline.ticketing.ticket import Ticket

ANSWERED = frozenset({AssignmentState.REPLIED, AssignmentState.ACCEPTED})
REMIND, OVERDUE, ALERT = "remind", "overdue", "alert"
LATE = "late"  # the single-unit assign deadline passed; the multi-unit one may still hold
MARKED, DECIDED = "emergency-marked", "emergency-decided"  # the plan's alerts (E-2, E-3)
EMERGENCY_STAGES = frozenset(
    {Stage.EMERGENCY_ASSIGN.value, Stage.EMERGENCY_RESPONSE.value, Stage.EMERGENCY_RESULT.value}
)
OFFICE_STAGES = frozenset(
    {
        Stage.ASSIGN.value,
        Stage.ASSIGN_MULTI.value,
        Stage.CALLBACK.value,
        Stage.EMERGENCY_ASSIGN.value,
    }
)


class Leads(Protocol):
    """How long before each deadline its reminder fires (``[watch]`` in the settings)."""

    @property
    def remind_assign_hours(self) -> float: ...

    @property
    def remind_sign_hours(self) -> float: ...

    @property
    def remind_handle_days(self) -> float: ...

    @property
    def remind_callback_hours(self) -> float: ...

    @property
    def remind_emergency_assign_minutes(self) -> float: ...

    @property
    def remind_emergency_response_minutes(self) -> float: ...

    @property
    def remind_emergency_result_hours(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Timer:
    what: str  # remind | overdue | alert
    part: str  # "ticket", or an assignment's id
    stage: str  # an sla.Stage value, or MARKED / DECIDED
    rule: str
    due: dt.datetime  # the deadline (an alert: the act it follows)
    at: dt.datetime  # when it fires

    @property
    def key(self) -> str:
        return f"{self.part}/{self.stage}/{self.what}/{self.due.astimezone(dt.UTC):%Y%m%dT%H%M%S}"


def timer_key(ticket_id: str, timer: Timer) -> str:
    return f"{ticket_id}/{timer.key}"


def plan(
    ticket: Ticket,
    leads: Leads,
    calendar: WorkingCalendar,
    multi_days: float | None = None,
) -> list[Timer]:
    """The timers the ticket wants now, in firing order. ``multi_days``: D-1's working days
    for an assignment to several units with a lead — until the office assigns, which of D-1's
    two deadlines applies is not known: the 2 working hours pass with a notice (``late``), the
    miss is marked at the longer one, and an assignment between the two that turns out late is
    recorded when it is made (:class:`hotline.ticketing.sla_watch.TimerSync`)."""
    timers: list[Timer] = []
    for part, deadline in watched(ticket):
        assert deadline.due is not None
        remind = reminder_at(deadline, leads, calendar)
        if remind is not None and remind < deadline.due:
            timers.append(Timer(REMIND, part, deadline.stage, deadline.rule, deadline.due, remind))
        final = deadline.due
        if deadline.stage == Stage.ASSIGN.value and part == "ticket" and multi_days:
            try:
                final = calendar.add_working_days(ticket.registered_at, multi_days)
            except CalendarError:
                final = deadline.due
            if final > deadline.due:
                timers.append(Timer(LATE, part, deadline.stage, "D-1", deadline.due, deadline.due))
        timers.append(Timer(OVERDUE, part, deadline.stage, deadline.rule, final, final))
    e = ticket.emergency
    if e is not None and ticket.state not in (TicketState.CLOSED, TicketState.REJECTED):
        timers.append(Timer(ALERT, "ticket", MARKED, "E-2", e.marked_at, e.marked_at))
        if e.respond and e.decided_at is not None:
            timers.append(Timer(ALERT, "ticket", DECIDED, "E-3", e.decided_at, e.decided_at))
    return sorted(timers, key=lambda t: (t.at, t.key))


def watched(ticket: Ticket) -> list[tuple[str, Deadline]]:
    """Every deadline still to be met, with the part it belongs to."""
    out: list[tuple[str, Deadline]] = []
    state = ticket.state
    if state is TicketState.REGISTERED and ticket.assign_deadline.open:
        out.append(("ticket", ticket.assign_deadline))
    e = ticket.emergency
    if (
        e is not None
        and e.assign is not None
        and e.assign.open
        and state
        in (
            TicketState.REGISTERED,
            TicketState.ASSIGNED,
        )
    ):
        out.append(("ticket", e.assign))
    for a in ticket.live_assignments():
        if state is not TicketState.ASSIGNED and state is not TicketState.REVIEW:
            break
        if a.state is AssignmentState.ASSIGNED and a.sign.open:
            out.append((a.id, a.sign))
        pending = any(e.approved is None for e in a.extensions)  # the office decides first
        if a.state not in ANSWERED and a.handle.open and not pending:
            out.append((a.id, a.handle))
        if a.response is not None and a.response.open:
            out.append((a.id, a.response))
        if a.result is not None and a.result.open:
            out.append((a.id, a.result))
    cb = ticket.callback_deadline
    if state in (TicketState.REVIEW, TicketState.CALLBACK) and cb is not None and cb.open:
        out.append(("ticket", cb))
    return out


def reminder_at(deadline: Deadline, leads: Leads, calendar: WorkingCalendar) -> dt.datetime | None:
    """The reminder's time, or None when its lead is 0 (off) or the calendar has a gap."""
    assert deadline.due is not None
    stage = deadline.stage
    if stage == Stage.EMERGENCY_ASSIGN.value:
        minutes = leads.remind_emergency_assign_minutes
    elif stage == Stage.EMERGENCY_RESPONSE.value:
        minutes = leads.remind_emergency_response_minutes
    else:
        minutes = None
    if minutes is not None:  # rule C-4: the wall clock
        return deadline.due - dt.timedelta(minutes=minutes) if minutes > 0 else None
    hours = {
        Stage.ASSIGN.value: leads.remind_assign_hours,
        Stage.ASSIGN_MULTI.value: leads.remind_assign_hours,
        Stage.SIGN.value: leads.remind_sign_hours,
        Stage.CALLBACK.value: leads.remind_callback_hours,
        Stage.EMERGENCY_RESULT.value: leads.remind_emergency_result_hours,
    }.get(stage)
    if hours is None:  # the handling stages: working days
        budget = calendar.day_length * leads.remind_handle_days
    else:
        budget = dt.timedelta(hours=hours)
    if budget <= dt.timedelta():
        return None
    try:
        return calendar.subtract_working_time(deadline.due, budget)
    except CalendarError:
        return None


# -- who hears, who answers for it --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Audience:
    roles: frozenset[str]
    unit: str | None = None  # the unit's own people only


DISPATCH = Audience(frozenset({"dispatcher", "supervisor"}))
REVIEW = Audience(frozenset({"reviewer", "supervisor"}))
DUTY = Audience(frozenset({"duty_leader"}))
SUPERVISION = Audience(frozenset({"supervisor", "discipline_officer"}))  # rule S-6


def unit_people(unit: str) -> Audience:
    return Audience(frozenset({"unit_handler", "unit_leader"}), unit)


def unit_of(ticket: Ticket, part: str) -> str | None:
    a = next((x for x in ticket.assignments if x.id == part), None)
    return a.unit_id if a is not None else None


def audiences(ticket: Ticket, timer: Timer) -> list[Audience]:
    """Who is told: the responsible people for a reminder; for an overdue mark the office as
    well, and the duty leader when it is one of the emergency plan's clocks."""
    if timer.stage == MARKED:
        return [DUTY]
    if timer.stage == DECIDED:
        e = ticket.emergency
        unit = e.unit if e is not None and e.unit else None
        units = [unit] if unit else [a.unit_id for a in ticket.live_assignments()]
        out = [unit_people(u) for u in units] + [DISPATCH]
        if e is not None and e.level == "leading_group":
            out.append(DUTY)
        return out
    unit = unit_of(ticket, timer.part)
    if timer.stage == Stage.CALLBACK.value:
        responsible = [REVIEW] if ticket.state is TicketState.REVIEW else [REVIEW, DISPATCH]
    elif unit is not None:
        responsible = [unit_people(unit)]
    else:
        responsible = [DISPATCH]
    if timer.what in (REMIND, LATE):
        return responsible
    told = responsible + ([DISPATCH] if DISPATCH not in responsible else [])
    if timer.stage in EMERGENCY_STAGES:
        told.append(DUTY)  # the escalation after each of the plan's deadlines
    return told


@dataclass(frozen=True, slots=True)
class Party:
    """Against whom a missed deadline counts (rule S-5)."""

    kind: str  # unit | office
    unit: str | None
    handler: str | None  # named: the handler who signed; None: look for the unit's one handler
    stage: str  # the stage as the record names it: review when the office had the replies


def party(ticket: Ticket, timer: Timer) -> Party:
    stage = timer.stage
    if stage == Stage.CALLBACK.value and ticket.state is TicketState.REVIEW:
        stage = "review"  # the replies sat with the office's reviewers (H-5)
    a = next((x for x in ticket.assignments if x.id == timer.part), None)
    if timer.stage in OFFICE_STAGES or a is None:
        return Party("office", None, None, stage)
    return Party("unit", a.unit_id, a.signed_by or None, stage)


# -- what they read (rule Y-1: nothing of the citizen) -------------------------------------------

STAGE_NAMES = {
    Stage.ASSIGN.value: "交办",
    Stage.ASSIGN_MULTI.value: "交办（多单位）",
    Stage.SIGN.value: "签收",
    Stage.HANDLE_CONSULTATION.value: "办理答复",
    Stage.HANDLE_OTHER.value: "办理答复",
    Stage.CALLBACK.value: "回访",
    "review": "审核",
    Stage.EMERGENCY_ASSIGN.value: "应急交办",
    Stage.EMERGENCY_RESPONSE.value: "应急初步响应",
    Stage.EMERGENCY_RESULT.value: "应急办理结果反馈",
}
TYPE_NAMES = {
    TicketType.CONSULTATION: "咨询",
    TicketType.HELP: "求助",
    TicketType.SUGGESTION: "建议",
    TicketType.COMPLAINT: "投诉举报",
}
GROUND_NAMES = {
    EmergencyGround.SERIOUS_HARM: "可能造成严重危害、恶劣影响",
    EmergencyGround.HARM_NOW: "危害事实正在发生",
    EmergencyGround.IN_EMERGENCY_PLAN: "纳入应急预案处置范围",
    EmergencyGround.IMMEDIATE_RESPONSE_ASKED: "有正当理由要求立即响应",
}


def text(ticket: Ticket, timer: Timer, tz: dt.tzinfo, unit_name: str = "") -> str:
    """The notification's words: the ticket's number and type, the stage, the time — never
    who called, their number or what they said (Y-1)."""
    head = f"工单 {ticket.number}（{TYPE_NAMES[ticket.type]}）"
    due = timer.due.astimezone(tz).strftime("%m-%d %H:%M")
    e = ticket.emergency
    if timer.stage == MARKED and e is not None:
        return (
            f"重大紧急诉求：{head}，依据：{GROUND_NAMES[e.ground]}。"
            "请立即报请市热线办作出应急响应决定（规则 E-2）。"
        )
    if timer.stage == DECIDED and e is not None and e.assign is not None and e.assign.due:
        by = e.assign.due.astimezone(tz).strftime("%m-%d %H:%M")
        who = f"{unit_name or e.unit}经办人" if (unit_name or e.unit) else "承办单位经办人"
        group = "（特别重大，已报请领导小组决定）" if e.level == "leading_group" else ""
        return (
            f"应急响应决定{group}：{head}须于 {by} 前交办；{who}请立即准备，"
            "接件后 30 分钟内反馈初步响应意见（规则 E-3、E-4）。"
        )
    stage = STAGE_NAMES.get(party(ticket, timer).stage, timer.stage)
    if timer.what == REMIND:
        return f"提醒：{head}的{stage}时限为 {due}，请及时办理（规则 {timer.rule}）。"
    if timer.what == LATE:
        return (
            f"超时提醒：{head}已过单一单位的{stage}时限 {due}，请尽快交办；"
            "多单位交办并指定牵头单位的，时限另计（规则 D-1）。"
        )
    escalated = "，已报值班领导" if timer.stage in EMERGENCY_STAGES else ""
    return f"超时：{head}的{stage}已于 {due} 到期未完成，已记违规{escalated}（规则 {timer.rule}）。"
