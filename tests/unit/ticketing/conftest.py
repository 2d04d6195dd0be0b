"""Fixtures for the pure ticketing tests: the real calendar data, fixed actors, a moving clock."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from hotline.config.settings import RulesSettings
from hotline.ticketing.calendar import WorkingCalendar, library_data, parse_office_hours
from hotline.ticketing.model import Actor, Channel, Citizen, Role, TicketType
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.ticket import Ctx, Ticket

CST = dt.timezone(dt.timedelta(hours=8))
CALENDAR = WorkingCalendar(library_data(), parse_office_hours("08:30-12:00,13:30-17:30"))

AGENT = Actor("u-agent", Role.AGENT)
DISPATCHER = Actor("u-disp", Role.DISPATCHER)
REVIEWER = Actor("u-rev", Role.REVIEWER)
SUPERVISOR = Actor("u-sup", Role.SUPERVISOR)
OFFICER = Actor("u-disc", Role.DISCIPLINE_OFFICER)
WATER_HANDLER = Actor("u-wh", Role.UNIT_HANDLER, "water")
WATER_LEADER = Actor("u-wl", Role.UNIT_LEADER, "water")
ROADS_HANDLER = Actor("u-rh", Role.UNIT_HANDLER, "roads")
ROADS_LEADER = Actor("u-rl", Role.UNIT_LEADER, "roads")

_ids = itertools.count(1)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=CST)


class World:
    """A clock the test moves, and a context maker."""

    def __init__(self, start: str = "2026-11-16T09:00", rules: RulesSettings | None = None):
        self.now = at(start)
        self.sla = SlaEngine(CALENDAR, rules or RulesSettings())

    def ctx(self, actor: Actor, when: str | None = None) -> Ctx:
        if when is not None:
            self.now = at(when)
        return Ctx(actor, self.now, self.sla)

    def register(self, type: TicketType = TicketType.COMPLAINT, **kw: object) -> Ticket:
        n = next(_ids)
        fields: dict[str, object] = dict(
            id=f"t{n}",
            number=f"20261116-{n:04d}",
            type=type,
            channel=Channel.PHONE,
            citizen=Citizen("张三", "13800138000"),
            subject="路灯不亮",
            content="小区门口路灯坏了三天",
        )
        fields.update(kw)
        return Ticket.register(self.ctx(AGENT), **fields)  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    return World()
