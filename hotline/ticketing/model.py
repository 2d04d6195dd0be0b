"""Vocabulary of the ticket aggregate: types, channels, states, roles, events, errors.

All frozen values; the aggregate itself lives in :mod:`hotline.ticketing.ticket`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hotline.errors import TicketError

__all__ = ["TicketError"]  # re-exported: the rule refusals live in the one exception tree


class TicketType(enum.Enum):  # rule I-1
    CONSULTATION = "consultation"  # 咨询
    HELP = "help"  # 求助
    SUGGESTION = "suggestion"  # 建议
    COMPLAINT = "complaint"  # 投诉举报


class Channel(enum.Enum):  # rule I-2
    PHONE = "phone"
    WEBSITE = "website"
    SMS = "sms"
    FAX = "fax"
    APP = "app"
    WECHAT = "wechat"
    EMAIL = "email"
    PROVINCIAL_PLATFORM = "provincial_platform"  # upper 12345 platforms
    PREFECTURE_PLATFORM = "prefecture_platform"
    NATIONAL_PLATFORM = "national_platform"
    GRID = "grid"  # linked systems
    POLICE = "police"
    DIGITAL_CITY = "digital_city"

    @property
    def pushed(self) -> bool:
        """Tickets pushed by another system carry that system's id (rule I-2)."""
        return self in PUSHED_CHANNELS


PUSHED_CHANNELS = frozenset(
    {
        Channel.PROVINCIAL_PLATFORM,
        Channel.PREFECTURE_PLATFORM,
        Channel.NATIONAL_PLATFORM,
        Channel.GRID,
        Channel.POLICE,
        Channel.DIGITAL_CITY,
    }
)


class RejectReason(enum.Enum):  # rule I-3, Art. 6 (1)-(9)
    OUTSIDE_JURISDICTION = "outside_jurisdiction"
    EMERGENCY_110_119_120 = "emergency_110_119_120"
    SECRETS_OR_PRIVACY = "secrets_or_privacy"
    IN_LEGAL_PROCEDURE = "in_legal_procedure"
    UNLAWFUL_OR_NO_REQUEST = "unlawful_or_no_request"
    ALREADY_HANDLED = "already_handled"
    UNIT_NOT_LINKED = "unit_not_linked"
    TOO_VAGUE = "too_vague"
    NOT_ADMINISTRATIVE = "not_administrative"


class TicketState(enum.Enum):
    REGISTERED = "registered"  # waiting for assignment (D-1)
    ASSIGNED = "assigned"  # with one or more units
    REVIEW = "review"  # every live reply is with the office (H-5)
    CALLBACK = "callback"  # review passed; call the citizen back (B-1)
    DISSATISFIED = "dissatisfied"  # callback unsatisfied; re-handle or office close (B-2)
    INTERNAL = "internal"  # internal transfer, non-public (T)
    CLOSED = "closed"
    REJECTED = "rejected"  # not accepted (I-3)


class AssignmentState(enum.Enum):
    ASSIGNED = "assigned"  # to sign (D-3)
    SIGNED = "signed"  # handling (H-1)
    RETURN_REQUESTED = "return_requested"  # the office decides (D-4)
    RETURNED = "returned"  # return accepted; this assignment ends
    REPLY_DRAFTED = "reply_drafted"  # the unit's leader approves (H-4)
    REPLIED = "replied"  # with the office for review (H-5)
    ACCEPTED = "accepted"  # review passed
    WITHDRAWN = "withdrawn"  # the office closed the ticket around it


LIVE_ASSIGNMENT = frozenset(
    {
        AssignmentState.ASSIGNED,
        AssignmentState.SIGNED,
        AssignmentState.RETURN_REQUESTED,
        AssignmentState.REPLY_DRAFTED,
        AssignmentState.REPLIED,
        AssignmentState.ACCEPTED,
    }
)


class CallbackResult(enum.Enum):  # rule B-2
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"  # key 2 of the survey: closes, as satisfied
    NO_OBJECTION = "no_objection"
    UNSATISFIED = "unsatisfied"


class EmergencyGround(enum.Enum):  # rule E-1, Art. 34 (1)-(4)
    SERIOUS_HARM = "serious_harm"  # may cause serious harm or bad influence, needs rapid handling
    HARM_NOW = "harm_now"  # the harm is happening now and needs an immediate response
    IN_EMERGENCY_PLAN = "in_emergency_plan"  # within the city's or a department's plans
    IMMEDIATE_RESPONSE_ASKED = "immediate_response_asked"  # the citizen has good reason to ask


class InternalCategory(enum.Enum):  # rules T-1 … T-3
    DISCIPLINE = "discipline"  # T-1: violations by party members / officials
    WORK_STYLE = "work_style"  # T-2: work style of cadres not managed by the city
    WORK_STYLE_CITY_CADRE = "work_style_city_cadre"  # T-2: city-managed cadres
    OTHER = "other"  # T-3: far from the facts, and what the office decides


class Role(enum.Enum):
    AGENT = "agent"
    DISPATCHER = "dispatcher"
    REVIEWER = "reviewer"
    SUPERVISOR = "supervisor"
    DUTY_LEADER = "duty_leader"
    UNIT_HANDLER = "unit_handler"
    UNIT_LEADER = "unit_leader"
    DISCIPLINE_OFFICER = "discipline_officer"
    ADMIN = "admin"

    @property
    def in_unit(self) -> bool:
        return self in (Role.UNIT_HANDLER, Role.UNIT_LEADER)


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str
    role: Role
    unit_id: str | None = None  # for unit roles


@dataclass(frozen=True, slots=True)
class Citizen:
    name: str = ""
    phone: str = ""
    id_number: str = ""  # identity document, if given


@dataclass(frozen=True, slots=True)
class Deadline:
    """One stage of the ticket or an assignment: when it was due, when it was done."""

    stage: str  # an sla.Stage value
    rule: str
    due: dt.datetime | None  # None: the working calendar has no data for that date (C-2)
    done: dt.datetime | None = None
    overdue: bool = False  # the SLA watch marked it when it passed undone (S-4, S-5)

    @property
    def late(self) -> bool | None:
        """True or False once done; None while open or when the due time is unknown."""
        if self.done is None or self.due is None:
            return None
        return self.done > self.due

    def finish(self, at: dt.datetime) -> Deadline:
        return Deadline(self.stage, self.rule, self.due, self.done or at, self.overdue)

    @property
    def open(self) -> bool:
        """Still to be met, with a known due time: what the SLA watch watches."""
        return self.done is None and self.due is not None


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One change of a ticket: who, in which role, when, what, under which rule, before/after."""

    seq: int
    at: dt.datetime
    actor: str
    role: str
    action: str
    rule: str
    before: str
    after: str
    data: Mapping[str, Any] = field(default_factory=dict)
