"""The ticket aggregate: one citizen request through the office and the linked units.

Theory of operation. A :class:`Ticket` holds its own state and its :class:`Assignment` s (one
per unit; several with a lead for multi-unit tickets, rule D-5). Every action is a method that
takes a :class:`Ctx` (who acts, when, and the SLA engine), checks the transition table and the
rule it enforces, changes the aggregate, and appends a :class:`~hotline.ticketing.model.
TicketEvent` (actor, role, time, action, rule, before/after). An action the rules forbid raises
:class:`~hotline.ticketing.model.TicketError` with a machine-readable code and the rule id and
changes nothing. No I/O here: persistence and the unit of work live in ``repository.py``.

Ticket states move REGISTERED → ASSIGNED → REVIEW → CALLBACK → CLOSED, with REJECTED (I-3),
INTERNAL (T), DISSATISFIED (B-2) on the side; assignment states move ASSIGNED → SIGNED →
REPLY_DRAFTED → REPLIED → ACCEPTED, with RETURN_REQUESTED/RETURNED (D-4) on the side. Where each
action may start and where it may lead is the table in :mod:`hotline.ticketing.transitions`;
every change of state goes through :meth:`Ticket._enter` or :meth:`Ticket._move`, which refuse
a target the table does not name. The ticket-level actions are here; a unit's side of its
assignment is :class:`~hotline.ticketing.assignment.UnitSide`, a part of the same aggregate.
The ticket state that follows the assignments is derived in :meth:`Ticket._settle`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from hotline import privacy
from hotline.errors import CalendarError
from hotline.ticketing.assignment import Assignment, UnitSide, _iso
from hotline.ticketing.model import (
    Actor,
    AssignmentState,
    CallbackResult,
    Channel,
    Citizen,
    Deadline,
    EmergencyGround,
    InternalCategory,
    RejectReason,
    TicketError,
    TicketEvent,
    TicketState,
    TicketType,
)
from hotline.ticketing.sla import SlaEngine, Stage
from hotline.ticketing.transitions import TRANSITIONS, WITHDRAWALS, A, T

__all__ = ["TRANSITIONS", "Assignment", "Ctx", "Ticket"]


@dataclass(frozen=True, slots=True)
class Ctx:
    actor: Actor
    now: dt.datetime
    sla: SlaEngine

    def due(self, stage: Stage, start: dt.datetime) -> dt.datetime | None:
        """The stage's deadline, or None where the working calendar has no data (rule C-2):
        the hotline keeps taking and assigning requests (C-1), the gap is on record, and
        nothing guesses a weekday."""
        try:
            return self.sla.due(stage, start)
        except CalendarError:
            return None


@dataclass(slots=True)
class Callback:
    result: CallbackResult
    note: str
    by: str
    at: dt.datetime
    late: bool
    method: str = "phone"  # phone survey or self-evaluation through the original channel (B-1)


@dataclass(slots=True)
class Publication:  # rules P-1, T-5
    published: bool
    exception: str | None  # internal_transfer | citizen_opted_out | unit_proposal | law_forbids
    decided_by: str
    decided_at: dt.datetime
    note: str = ""


@dataclass(slots=True)
class Internal:  # rules T-1 … T-4
    category: InternalCategory
    unit_id: str
    unit_name: str
    contact: str
    notice: str  # what the citizen is told through the original channel (T-4)
    filing_copy_to_discipline: bool
    result: str = ""


@dataclass(slots=True)
class Emergency:  # rules E-1 … E-4: a major urgent request under the emergency plan
    ground: EmergencyGround
    note: str
    marked_by: str
    marked_at: dt.datetime
    respond: bool | None = None  # the emergency-response decision: None until it is made
    level: str = ""  # office | leading_group (the gravest go to the leading group, E-2)
    unit: str = ""  # the unit whose handler is told by phone (E-3)
    decided_by: str = ""
    decided_at: dt.datetime | None = None
    decision_note: str = ""
    assign: Deadline | None = None  # E-3: the office assigns within 10 minutes of the decision


@dataclass(slots=True)
class Leg:  # one duty number rung for a three-way call (rule H-6)
    number: str
    outcome: str  # answered | busy | no_answer | rejected | failed | caller_gone
    seconds: float


@dataclass(slots=True)
class ThreeWayCall:  # rule H-6: the conference with the utility, as it went
    call_id: str
    utility: str
    unit: str
    connected: str | None  # the number that answered; None: none did (the ticket is flagged)
    legs: list[Leg]
    at: dt.datetime


DECISION_LEVELS = ("office", "leading_group")  # rule E-2
UTILITIES = ("water", "power", "gas")  # rule H-6
CALLBACK_METHODS = ("phone", "self_evaluation")  # rule B-1
NOTICE_TEMPLATE = "您所反映的问题已转由{unit}内部办理，{unit}的联系方式是{contact}"  # rule T-4


SUBJECT_CHARS = 40  # a subject taken from the content is its head, this long


def subject_of(content: str) -> str:
    """The content's head as the subject, never cut inside a number (rule Y-1): a cut that
    falls in a run of digits and separators goes on to the end of the run, so the scrubber
    sees the whole number and masks it, and no prefix of it outlives the mask."""
    text = content.strip()
    end = SUBJECT_CHARS
    while end < len(text) and _in_run(text[end]):
        end += 1
    return text[:end]


def _in_run(ch: str) -> bool:
    return ch.isdecimal() or ch.isspace() or ch in privacy.SEPARATORS or ch in "XxＸｘ"


@dataclass(slots=True)
class Ticket(UnitSide):
    id: str
    number: str
    type: TicketType
    channel: Channel
    citizen: Citizen
    subject: str
    content: str
    registered_at: dt.datetime
    registered_by: str
    assign_deadline: Deadline
    state: TicketState = TicketState.REGISTERED
    version: int = 0
    upstream_id: str | None = None
    upstream_due: dt.datetime | None = None  # H-1: an upper-level deadline wins
    category: str = ""  # routing category (D-2)
    address: str = ""
    publish_consent: bool = True  # P-1(2): the citizen's choice
    repeat_of: str | None = None  # D-6: the earlier ticket of the same request
    utility: str = ""  # H-6: water | power | gas — put through to the unit on a 3-way call
    recordings: list[str] = field(default_factory=list)  # a caller's voice message(s)
    call_id: str | None = None  # the call it was registered on (an agent, while talking)
    ivr_path: str = ""  # what the caller chose in the IVR before that call reached the agent
    assignments: list[Assignment] = field(default_factory=list)
    callback_deadline: Deadline | None = None
    callbacks: list[Callback] = field(default_factory=list)
    rehandled: int = 0
    return_refused_units: list[str] = field(default_factory=list)  # D-4: may not return again
    rejection: tuple[RejectReason, str] | None = None
    answer: str = ""
    internal: Internal | None = None
    closed_at: dt.datetime | None = None
    closed_how: str = ""
    decision: str = ""  # the office's recorded decision (B-2 office close, D-6)
    publication: Publication | None = None
    emergency: Emergency | None = None  # E-1: marked a major urgent request
    three_way: list[ThreeWayCall] = field(default_factory=list)  # H-6: the conferences
    seq: int = 0  # number of the last event
    # Events recorded on this instance, and those not stored yet (not part of the snapshot).
    events: list[TicketEvent] = field(default_factory=list, metadata={"transient": True})
    pending: list[TicketEvent] = field(default_factory=list, metadata={"transient": True})

    # -- intake -------------------------------------------------------------------------------
    @classmethod
    def register(
        cls,
        ctx: Ctx,
        *,
        id: str,
        number: str,
        type: TicketType,
        channel: Channel,
        citizen: Citizen,
        subject: str,
        content: str,
        upstream_id: str | None = None,
        upstream_due: dt.datetime | None = None,
        category: str = "",
        address: str = "",
        publish_consent: bool = True,
        repeat_of: str | None = None,
        utility: str = "",
        recordings: tuple[str, ...] = (),
        call_id: str | None = None,
        ivr_path: str = "",
    ) -> Ticket:
        """Rules I-1, I-2: a type, a channel, and for pushed tickets the upstream id; H-6: a
        utility emergency names the utility it was put through to."""
        if channel.pushed and not upstream_id:
            raise TicketError(
                "upstream_id_required", f"{channel.value} tickets carry the upstream id", "I-2"
            )
        if not content.strip():
            raise TicketError("content_required", "a ticket records the request", "I-1")
        ticket = cls(
            id=id,
            number=number,
            type=type,
            channel=channel,
            citizen=citizen,
            subject=subject.strip() or subject_of(content),
            content=content,
            registered_at=ctx.now,
            registered_by=ctx.actor.user_id,
            assign_deadline=Deadline(Stage.ASSIGN.value, "D-1", ctx.due(Stage.ASSIGN, ctx.now)),
            upstream_id=upstream_id or None,
            upstream_due=upstream_due,
            category=category,
            address=address,
            publish_consent=publish_consent,
            repeat_of=repeat_of,
            utility=utility,
            recordings=list(recordings),
            call_id=call_id or None,
            ivr_path=ivr_path,
        )
        if utility and utility not in UTILITIES:
            raise TicketError("unknown_utility", f"utility is one of {', '.join(UTILITIES)}", "H-6")
        ticket._record(
            ctx,
            "register",
            "I-1",
            "",
            T.REGISTERED.value,
            type=type.value,
            channel=channel.value,
            upstream_id=upstream_id,
        )
        if utility:  # rule H-6: put through to the utility at once, on a three-way call
            state = T.REGISTERED.value
            ticket._record(ctx, "three_way_call", "H-6", state, state, utility=utility)
        return ticket

    def reject(self, ctx: Ctx, reason: RejectReason, explanation: str) -> None:
        """Rules I-3, I-4: one of the nine reasons, and what the caller was told."""
        self._check("reject")
        if not explanation.strip():
            raise TicketError(
                "explanation_required", "record the explanation given to the citizen", "I-4"
            )
        self.rejection = (reason, explanation)
        self._close(ctx, "reject", "I-3", "rejected", state=T.REJECTED, reason=reason.value)

    def answer_on_spot(self, ctx: Ctx, answer: str, knowledge_id: str = "") -> None:
        """Rule I-5: a consultation answered from the knowledge base is closed at once."""
        self._check("answer_on_spot")
        if self.type is not TicketType.CONSULTATION:
            raise TicketError(
                "not_a_consultation",
                "only a consultation is closed by an answer on the spot",
                "I-5",
            )
        if not answer.strip():
            raise TicketError("answer_required", "record the answer given", "I-5")
        self.answer = answer
        self._close(ctx, "answer_on_spot", "I-5", "answered_on_spot", knowledge_id=knowledge_id)

    # -- dispatch -----------------------------------------------------------------------------
    def assign(self, ctx: Ctx, units: list[str], lead: str | None = None) -> None:
        """Rules D-1, D-5: to one or several units, a lead among them when several."""
        self._check("assign")
        if not units:
            raise TicketError("units_required", "name one or more distinct units", "D-5")
        self._check_new_units(units, lead)
        if not self.assignments:
            multi = len(units) > 1 and lead is not None
            stage = Stage.ASSIGN_MULTI if multi else Stage.ASSIGN
            due = ctx.due(stage, self.registered_at)
            self.assign_deadline = Deadline(stage.value, "D-1", due, ctx.now)
        for unit in units:
            self.assignments.append(self._new_assignment(ctx, unit, lead == unit, 1))
        e = self.emergency
        if e is not None and e.assign is not None and e.assign.done is None:
            e.assign = e.assign.finish(ctx.now)  # rule E-3
        before = self._go("assign", T.ASSIGNED)
        self._record(
            ctx,
            "assign",
            "D-1",
            before,
            self.state.value,
            units=units,
            lead=lead,
            late=self.assign_deadline.late,
        )

    def _check_new_units(self, units: list[str], lead: str | None) -> None:
        """Rule D-5: distinct units not holding it already, one lead at most, among them."""
        if not units:
            return
        if len(set(units)) != len(units):
            raise TicketError("units_required", "name one or more distinct units", "D-5")
        if lead is not None and lead not in units:
            raise TicketError("lead_not_assigned", "the lead must be one of the units", "D-5")
        live = [a for a in self.assignments if a.live]
        taken = {a.unit_id for a in live} & set(units)
        if taken:
            raise TicketError("already_assigned", f"already with {sorted(taken)}", "D-5")
        if lead is not None and any(a.lead for a in live):
            raise TicketError("lead_exists", "the ticket has a lead unit already", "D-5")

    def _new_assignment(self, ctx: Ctx, unit: str, lead: bool, round: int) -> Assignment:
        return Assignment(
            id=f"{self.id}-{len(self.assignments) + 1}",
            unit_id=unit,
            lead=lead,
            state=A.ASSIGNED,
            assigned_at=ctx.now,
            sign=Deadline(Stage.SIGN.value, "D-3", ctx.due(Stage.SIGN, ctx.now)),
            return_window=Deadline(Stage.RETURN.value, "D-4", ctx.due(Stage.RETURN, ctx.now)),
            handle=Deadline(self.handle_stage.value, "H-1", self._handle_due(ctx)),
            round=round,
            response=self._response_deadline(ctx),
        )

    def _response_deadline(self, ctx: Ctx) -> Deadline | None:
        """Rule E-4: under an emergency-response decision, a unit that receives the ticket
        gives its first response within 30 minutes, on the wall clock (C-4)."""
        if self.emergency is None or not self.emergency.respond:
            return None
        start = ctx.now
        return Deadline(
            Stage.EMERGENCY_RESPONSE.value, "E-4", ctx.due(Stage.EMERGENCY_RESPONSE, start)
        )

    @property
    def handle_stage(self) -> Stage:
        if self.type is TicketType.CONSULTATION:
            return Stage.HANDLE_CONSULTATION
        return Stage.HANDLE_OTHER

    def _handle_due(self, ctx: Ctx) -> dt.datetime | None:
        if self.upstream_due is not None and self.rehandled == 0:
            return self.upstream_due  # rule H-1: the upper level's own deadline wins
        return ctx.due(self.handle_stage, ctx.now)

    def stop_repeat(self, ctx: Ctx, timely_replies: int, new_facts: bool, decision: str) -> None:
        """Rule D-6: after more than N timely replies and no new facts, stop assigning."""
        self._check("stop_repeat")
        limit = ctx.sla.rules.repeat_reply_limit
        if not self.repeat_of:
            raise TicketError("not_a_repeat", "link the earlier ticket first", "D-6")
        if new_facts or timely_replies <= limit:
            raise TicketError(
                "repeat_limit_not_reached",
                f"{timely_replies} timely replies (more than {limit} needed) "
                f"{'and new facts' if new_facts else ''}".strip(),
                "D-6",
            )
        self.decision = decision
        self._close(ctx, "stop_repeat", "D-6", "repeat_not_assigned", timely_replies=timely_replies)

    # -- the emergency plan (E-1 … E-4) --------------------------------------------------------
    def mark_emergency(self, ctx: Ctx, ground: EmergencyGround, note: str = "") -> None:
        """Rules E-1, E-2: a major urgent request on one of Art. 34's grounds; the duty leader
        is alerted at once (the SLA watch's alert). Police, fire and medical emergencies go to
        110/119/120 instead (I-6) and are rejected, not marked."""
        self._check("mark_emergency")
        if self.emergency is not None:
            raise TicketError("already_emergency", "the ticket is under the plan already", "E-1")
        self.emergency = Emergency(ground, note, ctx.actor.user_id, ctx.now)
        state = self.state.value
        self._record(ctx, "mark_emergency", "E-1", state, state, ground=ground.value)

    def emergency_decision(
        self, ctx: Ctx, respond: bool, level: str, unit: str = "", note: str = ""
    ) -> None:
        """Rules E-2, E-3: the emergency-response decision (the office's, or for the gravest
        the leading group's), recorded by the duty leader; with a response, the unit's handler
        is told and the office assigns within 10 minutes on the wall clock (C-4)."""
        self._check("emergency_decision")
        e = self.emergency
        if e is None:
            raise TicketError("not_an_emergency", "mark the ticket a major urgent request", "E-2")
        if e.respond is not None:
            raise TicketError("already_decided", "the decision is on record", "E-2")
        if level not in DECISION_LEVELS:
            raise TicketError(
                "unknown_level", f"level is one of {', '.join(DECISION_LEVELS)}", "E-2"
            )
        if respond and not unit.strip() and not self.live_assignments():
            raise TicketError("unit_required", "name the unit whose handler is told (E-3)", "E-3")
        e.respond, e.level, e.unit, e.decision_note = respond, level, unit, note
        e.decided_by, e.decided_at = ctx.actor.user_id, ctx.now
        if respond:
            due = ctx.due(Stage.EMERGENCY_ASSIGN, ctx.now)
            done = ctx.now if self.live_assignments() else None  # assigned already
            e.assign = Deadline(Stage.EMERGENCY_ASSIGN.value, "E-3", due, done)
            for a in self.live_assignments():  # the units holding it answer within 30 min
                if a.response is None:
                    a.response = self._response_deadline(ctx)
        state = self.state.value
        self._record(
            ctx,
            "emergency_decision",
            "E-2",
            state,
            state,
            respond=respond,
            level=level,
            unit=unit or None,
        )

    def put_through(self, ctx: Ctx, call: ThreeWayCall) -> None:
        """Rule H-6: the three-way call with the utility's duty line, on record with every
        number tried; connected, a ticket still with the office goes to the utility's unit
        (the unit handles it directly with the citizen and feeds its result back)."""
        self.three_way.append(call)
        state = self.state.value
        self._record(
            ctx,
            "three_way_call",
            "H-6",
            state,
            state,
            utility=call.utility,
            unit=call.unit,
            connected=call.connected,
            legs=[
                {"number": x.number, "outcome": x.outcome, "seconds": x.seconds} for x in call.legs
            ],
            flagged=call.connected is None or None,
        )
        if call.connected is not None and self.state is TicketState.REGISTERED:
            self.assign(ctx, [call.unit])

    def attach_recording(self, ctx: Ctx, name: str, what: str) -> bool:
        """A recording made on the ticket's call (a three-way call's, rule H-6) is kept with
        it, for the office (Y-1); False when it is there already."""
        if name in self.recordings:
            return False
        self.recordings.append(name)
        state = self.state.value
        self._record(ctx, "recording", "H-6", state, state, recording=name, what=what)
        return True

    def mark_overdue(self, ctx: Ctx, part: str, stage: str) -> bool:
        """The SLA watch: a deadline passed undone (S-4). Marks it and records the event;
        False when it is no longer open or was marked already (the timer ran twice)."""
        holder, name = self.deadline_at(part, stage)
        deadline = getattr(holder, name) if holder is not None else None
        if deadline is None or not deadline.open or deadline.overdue:
            return False
        setattr(holder, name, replace(deadline, overdue=True))
        state = self.state.value
        unit = holder.unit_id if isinstance(holder, Assignment) else None
        assignment = holder.id if isinstance(holder, Assignment) else None
        self._record(
            ctx,
            "overdue",
            deadline.rule,
            state,
            state,
            stage=stage,
            due=deadline.due.isoformat() if deadline.due else None,
            unit=unit,
            assignment=assignment,
        )
        return True

    def deadline_at(self, part: str, stage: str) -> tuple[Any, str]:
        """Where a watched deadline lives: (the ticket, its emergency or an assignment; the
        attribute name), or (None, "") when there is no such part."""
        if part == "ticket":
            if stage in (Stage.ASSIGN.value, Stage.ASSIGN_MULTI.value):
                return self, "assign_deadline"
            if stage == Stage.CALLBACK.value:
                return self, "callback_deadline"
            if stage == Stage.EMERGENCY_ASSIGN.value:
                return self.emergency, "assign"
            return None, ""
        a = next((x for x in self.assignments if x.id == part), None)
        names = {
            Stage.SIGN.value: "sign",
            Stage.HANDLE_CONSULTATION.value: "handle",
            Stage.HANDLE_OTHER.value: "handle",
            Stage.EMERGENCY_RESPONSE.value: "response",
            Stage.EMERGENCY_RESULT.value: "result",
        }
        return (a, names[stage]) if a is not None and stage in names else (None, "")

    # -- the office's review and callback ----------------------------------------------------
    def review(self, ctx: Ctx, assignment_id: str, passed: bool, note: str = "") -> None:
        """Rule H-5: a reply that is not standard, specific or complete goes back to the unit,
        which completes it within the original deadline."""
        a = self._assignment("review", ctx, assignment_id)
        if not passed and not note.strip():
            raise TicketError("note_required", "say what the reply lacks", "H-5")
        a.review_note = note
        if passed:
            self._move(ctx, a, "review", "H-5", A.ACCEPTED, passed=True)
            return
        a.sent_back += 1
        a.handle = replace(a.handle, done=None)  # the original deadline still runs
        self._move(ctx, a, "review", "H-5", A.SIGNED, passed=False, handle_due=_iso(a.handle.due))

    def callback(
        self, ctx: Ctx, result: CallbackResult, note: str = "", method: str = "phone"
    ) -> None:
        """Rules B-1, B-2: satisfied or no objection closes; unsatisfied reopens. B-3: a
        utility emergency is called back by telephone."""
        self._check("callback")
        if method not in CALLBACK_METHODS:
            raise TicketError(
                "unknown_method", f"method is one of {', '.join(CALLBACK_METHODS)}", "B-1"
            )
        if self.utility and method != "phone":
            raise TicketError(
                "phone_callback_required", "utility emergencies are called back by telephone", "B-3"
            )
        assert self.callback_deadline is not None
        self.callback_deadline = self.callback_deadline.finish(ctx.now)
        late = bool(self.callback_deadline.late)
        self.callbacks.append(Callback(result, note, ctx.actor.user_id, ctx.now, late, method))
        if result is CallbackResult.UNSATISFIED:
            before = self._go("callback", T.DISSATISFIED)
            self._record(
                ctx, "callback", "B-2", before, self.state.value, result=result.value, late=late
            )
            return
        self._close(ctx, "callback", "B-2", result.value, result=result.value, late=late)

    def rehandle(self, ctx: Ctx, units: list[str] | None = None, note: str = "") -> None:
        """Rule B-2: back to the unit(s) for re-handling, with a fresh handling cycle."""
        self._check("rehandle")
        done = [a for a in self.assignments if a.state is A.ACCEPTED]
        units = units or [a.unit_id for a in done]
        if len(set(units)) != len(units):
            raise TicketError("units_required", "name distinct units", "B-2")
        self.rehandled += 1
        for a in done:
            self._withdraw("rehandle", a)
        for unit in units:
            lead = any(a.lead and a.unit_id == unit for a in done)
            self.assignments.append(self._new_assignment(ctx, unit, lead, self.rehandled + 1))
        before = self._go("rehandle", T.ASSIGNED)
        self.callback_deadline = None
        self._record(ctx, "rehandle", "B-2", before, self.state.value, units=units, note=note)

    def office_close(self, ctx: Ctx, decision: str) -> None:
        """Rule B-2: still unsatisfied after re-handling → the office may close, on record."""
        self._check("office_close")
        if self.rehandled == 0:
            raise TicketError(
                "rehandle_first",
                "an unsatisfied ticket is re-handled before the office may close it",
                "B-2",
            )
        if not decision.strip():
            raise TicketError("decision_required", "record the office's decision", "B-2")
        self.decision = decision
        self._close(ctx, "office_close", "B-2", "office_decision")

    # -- internal transfer --------------------------------------------------------------------
    def transfer_internal(
        self, ctx: Ctx, category: InternalCategory, unit_id: str, unit_name: str, contact: str
    ) -> None:
        """Rules T-1 … T-4: non-public handling; the citizen is told where it went."""
        self._check("transfer_internal")
        if category is InternalCategory.DISCIPLINE:
            self._need(ctx, "discipline_officer", "T-1")  # a designated officer
        if not (unit_name.strip() and contact.strip()):
            raise TicketError(
                "notice_fields_required", "the notice names the unit and its contact", "T-4"
            )
        for a in self.assignments:
            if a.live:
                self._withdraw("transfer_internal", a)
        self.internal = Internal(
            category,
            unit_id,
            unit_name,
            contact,
            NOTICE_TEMPLATE.format(unit=unit_name, contact=contact),
            filing_copy_to_discipline=category is InternalCategory.WORK_STYLE,  # T-2
        )
        before = self._go("transfer_internal", T.INTERNAL)
        self._record(
            ctx,
            "transfer_internal",
            "T-1",
            before,
            self.state.value,
            category=category.value,
            unit=unit_id,
        )

    def internal_result(self, ctx: Ctx, result: str) -> None:
        """Rule T-2: the result reaches the office (and the discipline commission)."""
        self._check("internal_result")
        assert self.internal is not None
        if not result.strip():
            raise TicketError("result_required", "record the result", "T-2")
        self.internal.result = result
        self.publication = Publication(False, "internal_transfer", "system", ctx.now)  # T-5
        self._close(ctx, "internal_result", "T-2", "internal", published=False)

    # -- publication --------------------------------------------------------------------------
    def decide_publication(
        self, ctx: Ctx, agree_with_unit: bool = False, law_forbids: bool = False, note: str = ""
    ) -> None:
        """Rule P-1: published unless one of its four exceptions holds."""
        self._check("decide_publication")
        if self.internal is not None:
            raise TicketError(
                "internal_never_published", "internal transfers are never published", "T-5"
            )
        proposals = [a.no_publication for a in self.assignments if a.no_publication]
        if agree_with_unit and not proposals:
            raise TicketError("no_unit_proposal", "no unit proposed to keep it unpublished", "P-1")
        exception = None
        if not self.publish_consent:
            exception = "citizen_opted_out"  # P-1(2)
        elif agree_with_unit:
            exception = "unit_proposal"  # P-1(3)
        elif law_forbids:
            exception = "law_forbids"  # P-1(4)
        before = "published" if self.published else "unpublished"
        self.publication = Publication(
            exception is None, exception, ctx.actor.user_id, ctx.now, note
        )
        self._record(
            ctx,
            "decide_publication",
            "P-1",
            before,
            "published" if self.published else "unpublished",
            exception=exception,
        )

    @property
    def published(self) -> bool:
        return self.publication is not None and self.publication.published

    # -- helpers ------------------------------------------------------------------------------
    def _check(self, action: str) -> None:
        transition = TRANSITIONS[action]
        if self.state not in transition.tickets:
            raise TicketError(
                "illegal_transition",
                f"{action} is not possible while the ticket is {self.state.value}",
                transition.rule,
            )

    def _assignment(self, action: str, ctx: Ctx, assignment_id: str) -> Assignment:
        self._check(action)
        a = next((x for x in self.assignments if x.id == assignment_id), None)
        if a is None:
            raise TicketError(
                "unknown_assignment", f"no assignment {assignment_id}", TRANSITIONS[action].rule
            )
        actor = ctx.actor
        if actor.role.in_unit and actor.unit_id != a.unit_id:
            raise TicketError(
                "not_your_assignment", "a unit acts on its own assignments only", "Y-1"
            )
        transition = TRANSITIONS[action]
        if transition.assignments is not None and a.state not in transition.assignments:
            raise TicketError(
                "illegal_transition",
                f"{action} is not possible while the assignment is {a.state.value}",
                transition.rule,
            )
        return a

    @staticmethod
    def _need(ctx: Ctx, role: str, rule: str) -> None:
        if ctx.actor.role.value != role:
            raise TicketError("role_required", f"only the {role} may do this", rule)

    def _move(
        self, ctx: Ctx, a: Assignment, action: str, rule: str, to: AssignmentState, **data: Any
    ) -> None:
        t = TRANSITIONS[action]
        if (to is not a.state) if t.stays else (to not in t.to_assignment):
            raise AssertionError(f"the transition table has no {action} to {to.value}")
        before = a.state.value
        a.state = to
        self._record(ctx, action, rule, before, to.value, assignment=a.id, unit=a.unit_id, **data)
        self._settle(ctx)

    def _go(self, action: str, state: TicketState) -> str:
        """Move the ticket to ``state``, a target the table names for ``action``; returns the
        state it was in."""
        if state not in TRANSITIONS[action].to:
            raise AssertionError(f"the transition table has no {action} to {state.value}")
        before = self.state.value
        self.state = state
        return before

    @staticmethod
    def _withdraw(action: str, a: Assignment) -> None:
        if a.state not in WITHDRAWALS[action]:
            raise AssertionError(f"the transition table has no {action} from {a.state.value}")
        a.state = A.WITHDRAWN

    def _settle(self, ctx: Ctx) -> None:
        """Derive the ticket's state from its live assignments."""
        live = [a for a in self.assignments if a.live]
        if self.state not in TRANSITIONS["settle"].tickets or not live:
            return
        before = self.state
        if all(a.state is A.ACCEPTED for a in live):
            self._go("settle", T.CALLBACK)
        elif all(a.state in (A.REPLIED, A.ACCEPTED) for a in live):
            self._go("settle", T.REVIEW)
        else:
            self._go("settle", T.ASSIGNED)
        fresh = self.state in (T.REVIEW, T.CALLBACK) and (
            before is T.ASSIGNED or self.callback_deadline is None
        )
        if fresh:
            # Art. 9(6): the callback clock runs from the office receiving the units' replies
            self.callback_deadline = Deadline(
                Stage.CALLBACK.value, "B-1", ctx.due(Stage.CALLBACK, ctx.now)
            )
        if self.state is not before:
            rule = "B-1" if self.state is T.CALLBACK else "H-5"
            self._record(ctx, "settle", rule, before.value, self.state.value)

    def _close(
        self, ctx: Ctx, action: str, rule: str, how: str, state: TicketState = T.CLOSED, **data: Any
    ) -> None:
        before = self._go(action, state)
        self.closed_at = ctx.now
        self.closed_how = how
        self._record(ctx, action, rule, before, state.value, how=how, **data)

    def _record(
        self, ctx: Ctx, action: str, rule: str, before: str, after: str, **data: Any
    ) -> None:
        self.seq += 1
        event = TicketEvent(
            seq=self.seq,
            at=ctx.now,
            actor=ctx.actor.user_id,
            role=ctx.actor.role.value,
            action=action,
            rule=rule,
            before=before,
            after=after,
            data={k: v for k, v in data.items() if v is not None},
        )
        self.events.append(event)
        self.pending.append(event)

    # -- views --------------------------------------------------------------------------------
    def live_assignments(self) -> list[Assignment]:
        return [a for a in self.assignments if a.live]

    def assignment_for(self, unit_id: str) -> Assignment | None:
        return next(
            (a for a in reversed(self.assignments) if a.unit_id == unit_id and a.live), None
        )
