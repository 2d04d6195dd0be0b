"""A unit's part of a ticket, and what the unit does with it (rules D-3, D-4, H-2 … H-4, P-1).

Theory of operation. A ticket holds one :class:`Assignment` per unit it went to (several with a
lead, rule D-5). The unit's side of the aggregate — sign, return, extension, reply and its
approval, the proposal not to publish — is :class:`UnitSide`, a part of
:class:`~hotline.ticketing.ticket.Ticket` kept in its own module: the methods act on one
assignment, check the transition table (:mod:`hotline.ticketing.transitions`) through the
ticket's helpers and move the assignment to a target state the table names. Still one
aggregate: one version, one event log, one unit of work.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hotline.errors import CalendarError
from hotline.ticketing.model import LIVE_ASSIGNMENT, AssignmentState, Deadline, TicketError
from hotline.ticketing.sla import Stage
from hotline.ticketing.transitions import A, T

if TYPE_CHECKING:
    from hotline.ticketing.model import TicketState
    from hotline.ticketing.ticket import Ctx


@dataclass(slots=True)
class Reply:
    text: str
    attachments: tuple[str, ...]
    drafted_by: str
    drafted_at: dt.datetime
    approved_by: str | None = None
    approved_at: dt.datetime | None = None


@dataclass(slots=True)
class Extension:  # rule H-3
    reason: str
    extra_days: float
    progress: str
    plan: str
    requested_by: str
    requested_at: dt.datetime
    approved: bool | None = None
    granted_days: float = 0.0
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    note: str = ""


@dataclass(slots=True)
class ReturnRequest:  # rule D-4
    reason: str
    basis: str
    suggested_unit: str
    requested_by: str
    requested_at: dt.datetime
    previous_state: AssignmentState
    justified: bool | None = None
    decided_by: str | None = None
    note: str = ""


@dataclass(slots=True)
class Assignment:
    id: str
    unit_id: str
    lead: bool
    state: AssignmentState
    assigned_at: dt.datetime
    sign: Deadline
    return_window: Deadline
    handle: Deadline
    round: int = 1  # 2, 3, … after re-handling (B-2)
    return_request: ReturnRequest | None = None
    extensions: list[Extension] = field(default_factory=list)
    reply: Reply | None = None
    sent_back: int = 0  # H-5 review send-backs
    review_note: str = ""
    no_publication: str = ""  # P-1(3): the unit's reason to keep the reply unpublished
    signed_by: str = ""  # the handler who signed: the one named for this part's misses (S-5)
    response: Deadline | None = None  # E-4: first response within 30 minutes (emergency plan)
    response_kind: str = ""  # initial_response | transfer_opinion
    response_text: str = ""
    result: Deadline | None = None  # E-4: the result within 1 working day of finishing
    finished_at: dt.datetime | None = None

    @property
    def live(self) -> bool:
        return self.state in LIVE_ASSIGNMENT


def _known(deadline: Deadline) -> dt.datetime:
    if deadline.due is None:
        raise TicketError(
            "deadline_unknown",
            f"no {deadline.stage} deadline: the working calendar lacks the year; add it to the "
            "calendar file",
            "C-2",
        )
    return deadline.due


def _extended(ctx: Ctx, deadline: Deadline, days: float) -> dt.datetime:
    try:
        return ctx.sla.calendar.add_working_days(_known(deadline), days)
    except CalendarError as exc:
        raise TicketError("deadline_unknown", str(exc), "C-2") from None


EMERGENCY_RESPONSES = ("initial_response", "transfer_opinion")  # rule E-4


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


class UnitSide:
    """The unit's actions on its own assignment; mixed into the ticket aggregate."""

    __slots__ = ()

    if TYPE_CHECKING:  # provided by the Ticket dataclass
        assignments: list[Assignment]
        return_refused_units: list[str]
        state: TicketState

        @property
        def handle_stage(self) -> Stage: ...

        def _assignment(self, action: str, ctx: Ctx, assignment_id: str) -> Assignment: ...
        def _check_new_units(self, units: list[str], lead: str | None) -> None: ...
        def _new_assignment(self, ctx: Ctx, unit: str, lead: bool, round: int) -> Assignment: ...
        def _go(self, action: str, state: TicketState) -> str: ...
        def _record(
            self, ctx: Ctx, action: str, rule: str, before: str, after: str, **data: Any
        ) -> None: ...
        def _move(
            self, ctx: Ctx, a: Assignment, action: str, rule: str, to: AssignmentState, **data: Any
        ) -> None: ...
        @staticmethod
        def _need(ctx: Ctx, role: str, rule: str) -> None: ...

    def sign(self, ctx: Ctx, assignment_id: str) -> None:
        """Rule D-3: the unit signs within 4 working hours."""
        a = self._assignment("sign", ctx, assignment_id)
        a.sign = a.sign.finish(ctx.now)
        a.signed_by = ctx.actor.user_id
        self._move(ctx, a, "sign", "D-3", A.SIGNED, late=a.sign.late)

    def request_return(
        self, ctx: Ctx, assignment_id: str, reason: str, basis: str, suggested_unit: str
    ) -> None:
        """Rule D-4: with a reason, a legal/mandate basis and a suggested unit; once refused,
        never again."""
        a = self._assignment("request_return", ctx, assignment_id)
        if a.unit_id in self.return_refused_units:  # for this ticket, whatever comes after
            raise TicketError(
                "second_return_refused",
                "the office found the earlier return unjustified; this unit may not return it "
                "again",
                "D-4",
            )
        missing = [
            n
            for n, v in (("reason", reason), ("basis", basis), ("suggested_unit", suggested_unit))
            if not v.strip()
        ]
        if missing:
            raise TicketError("return_fields_required", f"missing: {', '.join(missing)}", "D-4")
        a.return_request = ReturnRequest(
            reason, basis, suggested_unit, ctx.actor.user_id, ctx.now, a.state
        )
        a.return_window = a.return_window.finish(ctx.now)
        if a.response is not None and a.response.done is None:  # rule E-4: a transfer opinion
            a.response = a.response.finish(ctx.now)  # with its reasons is the first response
            a.response_kind, a.response_text = "transfer_opinion", reason
        self._move(
            ctx,
            a,
            "request_return",
            "D-4",
            A.RETURN_REQUESTED,
            late=a.return_window.late,
            suggested_unit=suggested_unit,
        )

    def decide_return(
        self,
        ctx: Ctx,
        assignment_id: str,
        justified: bool,
        note: str,
        reassign_to: list[str] | None = None,
    ) -> None:
        """Rule D-4: justified → the ticket goes to another unit; not → it stays, for good.

        While other units still hold the ticket, a justified return names the unit that takes
        the returned part over (``reassign_to``), so no part of the request is dropped; a lead
        that returns hands the lead on.
        """
        a = self._assignment("decide_return", ctx, assignment_id)
        request = a.return_request
        assert request is not None
        others = [x for x in self.assignments if x.live and x is not a]
        if justified:
            if others and not reassign_to:
                raise TicketError(
                    "reassignment_required",
                    "other units still hold this ticket: name the unit that takes the returned "
                    "part over",
                    "D-4",
                )
            self._check_new_units(reassign_to or [], lead=None)
        request.justified, request.decided_by, request.note = justified, ctx.actor.user_id, note
        if not justified:
            self.return_refused_units.append(a.unit_id)
            self._move(ctx, a, "decide_return", "D-4", request.previous_state, justified=False)
            return
        lead_goes = a.lead
        a.lead = False
        self._move(ctx, a, "decide_return", "D-4", A.RETURNED, justified=True)
        if reassign_to:
            for n, unit in enumerate(reassign_to):
                self.assignments.append(self._new_assignment(ctx, unit, lead_goes and n == 0, 1))
            before = self._go("decide_return", T.ASSIGNED)
            self._record(ctx, "reassign", "D-4", before, self.state.value, units=reassign_to)
        elif not others:
            before = self._go("decide_return", T.REGISTERED)  # back to the office to assign
            self._record(ctx, "await_reassignment", "D-4", before, self.state.value)

    def request_extension(
        self,
        ctx: Ctx,
        assignment_id: str,
        reason: str,
        extra_days: float,
        progress: str,
        plan: str,
    ) -> None:
        """Rule H-3: with the leader's approval, inside the window before the deadline, with
        its four fields, at most one original cycle in all."""
        a = self._assignment("request_extension", ctx, assignment_id)
        self._need(ctx, "unit_leader", "H-3")
        missing = [
            n
            for n, v in (("reason", reason), ("progress", progress), ("plan", plan))
            if not v.strip()
        ]
        if extra_days <= 0:
            missing.append("extra_days")
        if missing:
            raise TicketError("extension_fields_required", f"missing: {', '.join(missing)}", "H-3")
        if any(e.approved is None for e in a.extensions):
            raise TicketError("extension_pending", "an extension request is pending", "H-3")
        self._check_extension_window(ctx, a)
        cycle = ctx.sla.limits[self.handle_stage].amount * ctx.sla.rules.extension_max_cycles
        granted = sum(e.granted_days for e in a.extensions if e.approved)
        if granted + extra_days > cycle:
            raise TicketError(
                "extension_too_long",
                f"{granted:g} + {extra_days:g} working days exceed one original cycle ({cycle:g})",
                "H-3",
            )
        a.extensions.append(
            Extension(reason, extra_days, progress, plan, ctx.actor.user_id, ctx.now)
        )
        self._move(ctx, a, "request_extension", "H-3", a.state, extra_days=extra_days)

    def _check_extension_window(self, ctx: Ctx, a: Assignment) -> None:
        rules = ctx.sla.rules
        due = _known(a.handle)
        opens = due - dt.timedelta(hours=rules.extension_window_hours)
        if rules.extension_window == "within":  # literal: 截止前24小时内
            inside = opens <= ctx.now <= due
            where = f"between {opens.isoformat()} and {due.isoformat()}"
        else:  # "no later than 24 hours before"
            inside = ctx.now <= opens
            where = f"no later than {opens.isoformat()}"
        if not inside:
            raise TicketError(
                "extension_outside_window", f"extensions are requested {where}", "H-3"
            )

    def decide_extension(
        self,
        ctx: Ctx,
        assignment_id: str,
        approve: bool,
        days: float | None = None,
        note: str = "",
    ) -> None:
        """Rule H-3: the office approves (at most what was asked) or refuses."""
        a = self._assignment("decide_extension", ctx, assignment_id)
        pending = [e for e in a.extensions if e.approved is None]
        if not pending:
            raise TicketError("no_extension_pending", "no extension request to decide", "H-3")
        ext = pending[0]
        granted = ext.extra_days if days is None else days
        if approve and not 0 < granted <= ext.extra_days:
            raise TicketError(
                "extension_grant_invalid",
                f"grant between 0 and {ext.extra_days:g} working days",
                "H-3",
            )
        new_due = _extended(ctx, a.handle, granted) if approve else a.handle.due
        ext.approved, ext.decided_by, ext.decided_at, ext.note = (
            approve,
            ctx.actor.user_id,
            ctx.now,
            note,
        )
        if approve:
            ext.granted_days = granted
            a.handle = replace(a.handle, due=new_due, overdue=False)  # a new deadline to meet
        self._move(
            ctx,
            a,
            "decide_extension",
            "H-3",
            a.state,
            approved=approve,
            granted_days=ext.granted_days,
            handle_due=_iso(a.handle.due),
        )

    def draft_reply(
        self, ctx: Ctx, assignment_id: str, text: str, attachments: tuple[str, ...] = ()
    ) -> None:
        """Rules H-2, H-4: the handler drafts a specific reply, with site photos if any."""
        a = self._assignment("draft_reply", ctx, assignment_id)
        if len(text.strip()) < 10:
            raise TicketError(
                "reply_too_short", "a reply states what was done, specifically", "H-4"
            )
        a.reply = Reply(text, tuple(attachments), ctx.actor.user_id, ctx.now)
        self._move(ctx, a, "draft_reply", "H-4", A.REPLY_DRAFTED, attachments=len(attachments))

    def approve_reply(self, ctx: Ctx, assignment_id: str, approve: bool, note: str = "") -> None:
        """Rule H-4: the reply reaches the office only after the unit's leader approves it."""
        a = self._assignment("approve_reply", ctx, assignment_id)
        self._need(ctx, "unit_leader", "H-4")
        if not approve:
            self._move(ctx, a, "approve_reply", "H-4", A.SIGNED, approved=False, note=note)
            return
        assert a.reply is not None
        a.reply.approved_by, a.reply.approved_at = ctx.actor.user_id, ctx.now
        a.handle = a.handle.finish(ctx.now)
        if a.result is not None:  # rule E-4: the result is fed back through the system
            a.result = a.result.finish(ctx.now)
        self._move(ctx, a, "approve_reply", "H-4", A.REPLIED, approved=True, late=a.handle.late)

    # -- the emergency plan (E-4) ------------------------------------------------------------
    def emergency_response(self, ctx: Ctx, assignment_id: str, kind: str, text: str) -> None:
        """Rule E-4: within 30 minutes an initial response, or a transfer opinion with the
        reasons (not our business, or other units needed)."""
        a = self._assignment("emergency_response", ctx, assignment_id)
        if a.response is None:
            raise TicketError(
                "not_an_emergency", "no emergency-response decision covers this part", "E-4"
            )
        if a.response.done is not None:
            raise TicketError("already_responded", "the first response is on record", "E-4")
        if kind not in EMERGENCY_RESPONSES:
            raise TicketError(
                "unknown_response", f"kind is one of {', '.join(EMERGENCY_RESPONSES)}", "E-4"
            )
        if not text.strip():
            what = "the reasons" if kind == "transfer_opinion" else "the initial response"
            raise TicketError("response_text_required", f"record {what}", "E-4")
        a.response = a.response.finish(ctx.now)
        a.response_kind, a.response_text = kind, text
        self._move(ctx, a, "emergency_response", "E-4", a.state, kind=kind, late=a.response.late)

    def emergency_finished(self, ctx: Ctx, assignment_id: str, note: str = "") -> None:
        """Rule E-4: the unit has finished on site; its result is due within 1 working day."""
        a = self._assignment("emergency_finished", ctx, assignment_id)
        if a.response is None:
            raise TicketError(
                "not_an_emergency", "no emergency-response decision covers this part", "E-4"
            )
        if a.finished_at is not None:
            raise TicketError("already_finished", "the finish is on record", "E-4")
        a.finished_at = ctx.now
        a.result = Deadline(
            Stage.EMERGENCY_RESULT.value, "E-4", ctx.due(Stage.EMERGENCY_RESULT, ctx.now)
        )
        self._move(
            ctx, a, "emergency_finished", "E-4", a.state, note=note, result_due=_iso(a.result.due)
        )

    def propose_no_publication(self, ctx: Ctx, assignment_id: str, reason: str) -> None:
        """Rule P-1(3): the unit proposes not to publish its reply; the office decides."""
        a = self._assignment("propose_no_publication", ctx, assignment_id)
        self._need(ctx, "unit_leader", "P-1")
        if not reason.strip():
            raise TicketError("reason_required", "say why the reply should stay unpublished", "P-1")
        a.no_publication = reason
        self._move(ctx, a, "propose_no_publication", "P-1", a.state)
