"""Deadlines per stage of a ticket (rules D-1, D-3, D-4, H-1, B-1, E-3, E-4).

Every stage names its rule and its clock: working time on the city's calendar (rule C-2) or
the wall clock for the emergency stages (rule C-4). The numbers come from the rule table in
settings (``[rules]``), defaulting to RULES.md.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Protocol

from hotline.ticketing.calendar import WorkingCalendar


class Stage(enum.Enum):
    ASSIGN = "assign"
    ASSIGN_MULTI = "assign-multi"
    SIGN = "sign"
    RETURN = "return"
    HANDLE_CONSULTATION = "handle-consultation"
    HANDLE_OTHER = "handle-other"
    CALLBACK = "callback"
    EMERGENCY_ASSIGN = "emergency-assign"
    EMERGENCY_RESPONSE = "emergency-response"
    EMERGENCY_RESULT = "emergency-result"


@dataclass(frozen=True, slots=True)
class Limit:
    rule: str
    amount: float
    unit: str  # "working-hours" | "working-days" | "minutes"
    what: str

    def describe(self) -> str:
        unit = self.unit.replace("-", " ")
        unit = unit[:-1] if self.amount == 1 else unit
        return f"{self.amount:g} {unit} ({self.what}, rule {self.rule})"


class RuleBook(Protocol):
    """Every number of the rule book the deadlines need (``[rules]`` in the settings:
    :class:`hotline.config.settings.RulesSettings`); read-only, so the core needs no loader."""

    @property
    def assign_hours(self) -> float: ...

    @property
    def assign_multi_days(self) -> float: ...

    @property
    def sign_hours(self) -> float: ...

    @property
    def return_days(self) -> float: ...

    @property
    def handle_consultation_days(self) -> float: ...

    @property
    def handle_other_days(self) -> float: ...

    @property
    def callback_days(self) -> float: ...

    @property
    def extension_window_hours(self) -> float: ...

    @property
    def extension_window(self) -> str: ...

    @property
    def extension_max_cycles(self) -> float: ...

    @property
    def repeat_reply_limit(self) -> int: ...

    @property
    def emergency_assign_minutes(self) -> float: ...

    @property
    def emergency_response_minutes(self) -> float: ...

    @property
    def emergency_result_days(self) -> float: ...


def limits(rules: RuleBook) -> dict[Stage, Limit]:
    return {
        Stage.ASSIGN: Limit("D-1", rules.assign_hours, "working-hours", "office assigns"),
        Stage.ASSIGN_MULTI: Limit(
            "D-1", rules.assign_multi_days, "working-days", "office assigns to several units"
        ),
        Stage.SIGN: Limit("D-3", rules.sign_hours, "working-hours", "unit signs"),
        Stage.RETURN: Limit("D-4", rules.return_days, "working-days", "unit may return"),
        Stage.HANDLE_CONSULTATION: Limit(
            "H-1", rules.handle_consultation_days, "working-days", "consultation handled"
        ),
        Stage.HANDLE_OTHER: Limit(
            "H-1", rules.handle_other_days, "working-days", "other types handled"
        ),
        Stage.CALLBACK: Limit("B-1", rules.callback_days, "working-days", "citizen called back"),
        Stage.EMERGENCY_ASSIGN: Limit(
            "E-3", rules.emergency_assign_minutes, "minutes", "emergency assigned"
        ),
        Stage.EMERGENCY_RESPONSE: Limit(
            "E-4", rules.emergency_response_minutes, "minutes", "unit's first response"
        ),
        Stage.EMERGENCY_RESULT: Limit(
            "E-4", rules.emergency_result_days, "working-days", "result after finishing"
        ),
    }


class SlaEngine:
    """Deadlines from a start instant, on the city's working calendar."""

    def __init__(self, calendar: WorkingCalendar, rules: RuleBook) -> None:
        self.calendar = calendar
        self.rules = rules
        self.limits = limits(rules)

    def due(self, stage: Stage, start: dt.datetime) -> dt.datetime:
        limit = self.limits[stage]
        if limit.unit == "minutes":  # rule C-4: emergencies run on the wall clock
            return (start + dt.timedelta(minutes=limit.amount)).astimezone(self.calendar.tz)
        if limit.unit == "working-hours":
            return self.calendar.add_working_hours(start, limit.amount)
        return self.calendar.add_working_days(start, limit.amount)
