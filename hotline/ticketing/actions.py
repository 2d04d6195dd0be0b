"""Every ticket action in one table: who may take it, what its payload is, what it calls.

The HTTP API, the role matrix and the OpenAPI document are all read from this table, so an
action is declared once. Payload fields are checked here (400 with the field named); the rules
themselves are the aggregate's (409 with the rule id).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hotline.errors import PayloadError
from hotline.ticketing.model import (
    CallbackResult,
    Channel,
    EmergencyGround,
    InternalCategory,
    RejectReason,
    Role,
    TicketType,
)
from hotline.ticketing.ticket import Ctx, Ticket

R = Role
OFFICE = frozenset(
    {R.AGENT, R.DISPATCHER, R.REVIEWER, R.SUPERVISOR, R.DUTY_LEADER, R.DISCIPLINE_OFFICER}
)
UNIT = frozenset({R.UNIT_HANDLER, R.UNIT_LEADER})


@dataclass(frozen=True, slots=True)
class Field:
    kind: Any  # str, bool, float, int, list (of str), an Enum class
    required: bool = True
    doc: str = ""
    default: Any = None
    max_len: int = 20_000  # for strings (and each item of a list)
    format: str = ""  # a JSON Schema format the text follows (date-time)
    pattern: str = ""  # a JSON Schema pattern in place of the one every text has (no NUL)

    def parse(self, name: str, raw: Any) -> Any:
        if raw is None:
            if self.required:
                raise PayloadError(name, "is required")
            return self.default
        kind = self.kind
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            try:
                return kind(raw)
            except ValueError:
                allowed = ", ".join(m.value for m in kind)
                raise PayloadError(name, f"must be one of {allowed}") from None
        check = _CHECKS.get(kind)
        if check is not None:
            return check(name, raw, self.max_len)
        if not isinstance(raw, kind):
            raise PayloadError(name, f"must be a {kind.__name__}")
        return raw

    def schema(self) -> dict[str, Any]:
        """The field in JSON Schema, as narrow as what :meth:`parse` accepts (400 otherwise)."""
        kind = self.kind
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            out: dict[str, Any] = {"type": "string", "enum": [m.value for m in kind]}
        elif kind is list:
            item = {"type": "string", "minLength": 1, "maxLength": self.max_len, **TEXT}
            out = {"type": "array", "maxItems": MAX_ITEMS, "items": item}
        elif kind is str:
            out = {"type": "string", "maxLength": self.max_len, **TEXT}
            if self.pattern:
                out["pattern"] = self.pattern
            if self.format:
                out["format"] = self.format
        elif kind is bool:
            out = {"type": "boolean"}
        else:
            top = 10**MAX_DIGITS - 1
            out = {"type": "number" if kind is float else "integer", "minimum": -top}
            out["maximum"] = top
        if self.doc:
            out["description"] = self.doc
        return out


# What the HTTP edge refuses in any text (hotline.web): NUL and lone surrogates.
TEXT = {"pattern": "^[^\\u0000]*$"}
MAX_ITEMS = 50
MAX_DIGITS = 15  # integers in a body (hotline.web.MAX_INT_DIGITS)


def _list(name: str, raw: Any, max_len: int) -> list[str]:
    ok = isinstance(raw, list) and len(raw) <= MAX_ITEMS
    if not (ok and all(isinstance(x, str) and 0 < len(x) <= max_len for x in raw)):
        raise PayloadError(name, f"must be a list of non-empty strings of {max_len} at most")
    return list(raw)


def _number(name: str, raw: Any, max_len: int) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise PayloadError(name, "must be a finite number")
    return float(raw)


def _integer(name: str, raw: Any, max_len: int) -> int:
    value = integral(raw)
    if value is None:
        raise PayloadError(name, "must be an integer")
    return value


def integral(raw: Any) -> int | None:
    """A JSON integer, also written as ``6032.0`` (JSON Schema counts that as an integer)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < 10**MAX_DIGITS:
        return int(raw)
    return None


def _text(name: str, raw: Any, max_len: int) -> str:
    if not isinstance(raw, str):
        raise PayloadError(name, "must be a string")
    if len(raw) > max_len:
        raise PayloadError(name, f"is longer than {max_len} characters")
    return raw


_CHECKS: dict[Any, Callable[[str, Any, int], Any]] = {
    list: _list,
    float: _number,
    int: _integer,
    str: _text,
}

Call = Callable[[Ticket, Ctx, Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    rule: str
    roles: frozenset[Role]
    fields: Mapping[str, Field]
    call: Call
    summary: str

    def parse(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(payload) - set(self.fields) - {"version"}
        if unknown:
            raise PayloadError(sorted(unknown)[0], "is not a field of " + self.name)
        return {name: f.parse(name, payload.get(name)) for name, f in self.fields.items()}


def _a(
    name: str,
    rule: str,
    roles: set[Role] | frozenset[Role],
    summary: str,
    call: Call,
    **fields: Field,
) -> Action:
    return Action(name, rule, frozenset(roles), fields, call, summary)


S, B, N, L = str, bool, float, list
AID = Field(S, doc="the assignment's id (from the ticket view)", max_len=64)
UNITS = Field(list, max_len=64, doc="unit ids")

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        _a(
            "reject",
            "I-3",
            {R.AGENT, R.DISPATCHER, R.SUPERVISOR},
            "Not accepted: one of the nine reasons, and the explanation given (I-3, I-4)",
            lambda t, c, p: t.reject(c, p["reason"], p["explanation"]),
            reason=Field(RejectReason),
            explanation=Field(S),
        ),
        _a(
            "answer_on_spot",
            "I-5",
            {R.AGENT},
            "A consultation answered from the knowledge base; closes it (I-5)",
            lambda t, c, p: t.answer_on_spot(c, p["answer"], p["knowledge_id"]),
            answer=Field(S),
            knowledge_id=Field(S, required=False, default=""),
        ),
        _a(
            "assign",
            "D-1",
            {R.DISPATCHER, R.SUPERVISOR},
            "To one or more units, with a lead when several (D-1, D-5)",
            lambda t, c, p: t.assign(c, p["units"], p["lead"]),
            units=UNITS,
            lead=Field(S, required=False, max_len=64),
        ),
        _a(
            "stop_repeat",
            "D-6",
            {R.DISPATCHER, R.SUPERVISOR},
            "Stop assigning a repeat request after more than N timely replies (D-6); the count "
            "comes from the linked earlier tickets",
            lambda t, c, p: t.stop_repeat(c, p["timely_replies"], p["new_facts"], p["decision"]),
            new_facts=Field(B),
            decision=Field(S),
        ),
        _a(
            "sign",
            "D-3",
            UNIT,
            "The unit signs for its assignment (D-3)",
            lambda t, c, p: t.sign(c, p["assignment"]),
            assignment=AID,
        ),
        _a(
            "request_return",
            "D-4",
            UNIT,
            "Not our business: reason, basis and suggested unit (D-4)",
            lambda t, c, p: t.request_return(
                c, p["assignment"], p["reason"], p["basis"], p["suggested_unit"]
            ),
            assignment=AID,
            reason=Field(S),
            basis=Field(S),
            suggested_unit=Field(S),
        ),
        _a(
            "decide_return",
            "D-4",
            {R.DISPATCHER, R.SUPERVISOR},
            "Justified: reassign; not: it stays and may not be returned again (D-4)",
            lambda t, c, p: t.decide_return(
                c, p["assignment"], p["justified"], p["note"], p["reassign_to"]
            ),
            assignment=AID,
            justified=Field(B),
            note=Field(S, required=False, default=""),
            reassign_to=Field(L, required=False, max_len=64),
        ),
        _a(
            "request_extension",
            "H-3",
            {R.UNIT_LEADER},
            "More time, inside the window, with reason, extra days, progress and plan (H-3)",
            lambda t, c, p: t.request_extension(
                c, p["assignment"], p["reason"], p["extra_days"], p["progress"], p["plan"]
            ),
            assignment=AID,
            reason=Field(S),
            extra_days=Field(N, doc="working days"),
            progress=Field(S),
            plan=Field(S),
        ),
        _a(
            "decide_extension",
            "H-3",
            {R.SUPERVISOR, R.DUTY_LEADER},
            "The office approves (at most what was asked) or refuses (H-3)",
            lambda t, c, p: t.decide_extension(
                c, p["assignment"], p["approve"], p["days"], p["note"]
            ),
            assignment=AID,
            approve=Field(B),
            days=Field(N, required=False),
            note=Field(S, required=False, default=""),
        ),
        _a(
            "draft_reply",
            "H-4",
            {R.UNIT_HANDLER},
            "The handler's reply, specific, with site photos if any (H-2, H-4)",
            lambda t, c, p: t.draft_reply(
                c, p["assignment"], p["text"], tuple(p["attachments"] or ())
            ),
            assignment=AID,
            text=Field(S),
            attachments=Field(L, required=False, max_len=500),
        ),
        _a(
            "approve_reply",
            "H-4",
            {R.UNIT_LEADER},
            "The unit's leader sends the reply to the office, or back to the handler (H-4)",
            lambda t, c, p: t.approve_reply(c, p["assignment"], p["approve"], p["note"]),
            assignment=AID,
            approve=Field(B),
            note=Field(S, required=False, default=""),
        ),
        _a(
            "propose_no_publication",
            "P-1",
            {R.UNIT_LEADER},
            "The unit proposes not to publish its reply (P-1(3))",
            lambda t, c, p: t.propose_no_publication(c, p["assignment"], p["reason"]),
            assignment=AID,
            reason=Field(S),
        ),
        _a(
            "review",
            "H-5",
            {R.REVIEWER},
            "Pass a reply, or send it back to be completed within the original deadline (H-5)",
            lambda t, c, p: t.review(c, p["assignment"], p["passed"], p["note"]),
            assignment=AID,
            passed=Field(B),
            note=Field(S, required=False, default=""),
        ),
        _a(
            "callback",
            "B-1",
            {R.AGENT, R.REVIEWER},
            "The citizen's satisfaction; satisfied or no objection closes (B-1, B-2)",
            lambda t, c, p: t.callback(c, p["result"], p["note"], p["method"]),
            result=Field(CallbackResult),
            note=Field(S, required=False, default=""),
            method=Field(
                S,
                required=False,
                default="phone",
                doc="phone, or self_evaluation through the original channel (B-1, B-3)",
            ),
        ),
        _a(
            "rehandle",
            "B-2",
            {R.REVIEWER, R.DISPATCHER, R.SUPERVISOR},
            "Unsatisfied: back to the unit(s) for re-handling (B-2)",
            lambda t, c, p: t.rehandle(c, p["units"], p["note"]),
            units=Field(L, required=False, max_len=64),
            note=Field(S, required=False, default=""),
        ),
        _a(
            "office_close",
            "B-2",
            {R.SUPERVISOR, R.DUTY_LEADER},
            "Still unsatisfied after re-handling: the office closes, on record (B-2)",
            lambda t, c, p: t.office_close(c, p["decision"]),
            decision=Field(S),
        ),
        _a(
            "transfer_internal",
            "T-1",
            {R.DISCIPLINE_OFFICER, R.SUPERVISOR},
            "Non-public handling; the citizen is told the unit and its contact (T-1 … T-4)",
            lambda t, c, p: t.transfer_internal(
                c, p["category"], p["unit"], p["unit_name"], p["contact"]
            ),
            category=Field(InternalCategory),
            unit=Field(S, max_len=64),
            unit_name=Field(S, max_len=200),
            contact=Field(S, max_len=200),
        ),
        _a(
            "internal_result",
            "T-2",
            {R.DISCIPLINE_OFFICER, R.SUPERVISOR},
            "The result of an internal transfer; closes it, never published (T-2, T-5)",
            lambda t, c, p: t.internal_result(c, p["result"]),
            result=Field(S),
        ),
        _a(
            "decide_publication",
            "P-1",
            {R.SUPERVISOR, R.REVIEWER},
            "Publish, unless one of the four exceptions holds (P-1)",
            lambda t, c, p: t.decide_publication(
                c, p["agree_with_unit"], p["law_forbids"], p["note"]
            ),
            agree_with_unit=Field(B, required=False, default=False),
            law_forbids=Field(B, required=False, default=False),
            note=Field(S, required=False, default=""),
        ),
        _a(
            "mark_emergency",
            "E-1",
            {R.AGENT, R.DISPATCHER, R.SUPERVISOR},
            "A major urgent request on one of Art. 34's four grounds; the duty leader is "
            "alerted at once (E-1, E-2)",
            lambda t, c, p: t.mark_emergency(c, p["ground"], p["note"]),
            ground=Field(EmergencyGround),
            note=Field(S, required=False, default="", max_len=2000),
        ),
        _a(
            "emergency_decision",
            "E-2",
            {R.DUTY_LEADER, R.SUPERVISOR},
            "The emergency-response decision (the office's, or the leading group's for the "
            "gravest); with a response the unit's handler is alerted and the office assigns "
            "within 10 minutes (E-2, E-3)",
            lambda t, c, p: t.emergency_decision(c, p["respond"], p["level"], p["unit"], p["note"]),
            respond=Field(B),
            level=Field(
                S,
                required=False,
                default="office",
                doc="office, or leading_group for the gravest",
                max_len=32,
            ),
            unit=Field(S, required=False, default="", max_len=64, doc="the unit to alert"),
            note=Field(S, required=False, default="", max_len=2000),
        ),
        _a(
            "emergency_response",
            "E-4",
            UNIT,
            "The unit's first response within 30 minutes, or a transfer opinion with reasons (E-4)",
            lambda t, c, p: t.emergency_response(c, p["assignment"], p["kind"], p["text"]),
            assignment=AID,
            kind=Field(S, doc="initial_response or transfer_opinion", max_len=32),
            text=Field(S),
        ),
        _a(
            "emergency_finished",
            "E-4",
            UNIT,
            "The unit finished on site; the result is due within 1 working day (E-4)",
            lambda t, c, p: t.emergency_finished(c, p["assignment"], p["note"]),
            assignment=AID,
            note=Field(S, required=False, default=""),
        ),
    ]
}

REGISTER_ROLES = frozenset({R.AGENT, R.DISPATCHER, R.SUPERVISOR})
REGISTER_FIELDS: dict[str, Field] = {
    "type": Field(TicketType),
    "channel": Field(Channel),
    "content": Field(S),
    "subject": Field(S, required=False, default=""),
    "citizen_name": Field(S, required=False, default="", max_len=100),
    "citizen_phone": Field(S, required=False, default="", max_len=32),
    "citizen_id_number": Field(S, required=False, default="", max_len=32),
    "upstream_id": Field(S, required=False, max_len=128),
    "upstream_due": Field(
        S,
        required=False,
        doc="RFC 3339 date-time with an offset, in the years 2000-2100; an upper-level "
        "deadline (H-1)",
        max_len=40,
        format="date-time",
        pattern="^((20[0-9]{2}|2100)-[^\\u0000]*)?$",
    ),
    "category": Field(S, required=False, default="", max_len=64),
    "address": Field(S, required=False, default=""),
    "publish_consent": Field(B, required=False, default=True),
    "repeat_of": Field(S, required=False, doc="number of the earlier ticket (D-6)", max_len=32),
    "utility": Field(
        S,
        required=False,
        default="",
        doc="water, power or gas: a utility emergency put through (H-6)",
    ),
    "call_id": Field(
        S, required=False, doc="the call it is registered on (the console sends it)", max_len=128
    ),
    "ivr_path": Field(
        S, required=False, default="", doc="the caller's way through the IVR", max_len=200
    ),
}
