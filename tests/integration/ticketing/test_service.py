"""The ticket service on SQLite: repeat suppression counts, per unit, the timely replies on
every ticket linked to the same request (rule D-6)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import FixedClock
from hotline.config.settings import RulesSettings
from hotline.errors import TicketError
from hotline.ticketing.model import Actor, Role
from hotline.ticketing.service import TicketService
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.ticket import Ticket
from hotline.ticketing.users import add_unit, add_user, authenticate
from tests.unit.ticketing.conftest import CALENDAR, at


class Office:
    def __init__(self, engine: AsyncEngine) -> None:
        clock = FixedClock(at("2026-11-16T09:00"))
        self.service = TicketService(
            engine, SlaEngine(CALENDAR, RulesSettings()), clock, "Asia/Shanghai"
        )
        self.engine = engine
        self.who: dict[str, Actor] = {}

    async def staff(self) -> None:
        users = [("agent", Role.AGENT, None), ("disp", Role.DISPATCHER, None)]
        for unit in ("water", "roads"):
            await add_unit(self.engine, unit, unit)
            users += [(f"{unit}_h", Role.UNIT_HANDLER, unit), (f"{unit}_l", Role.UNIT_LEADER, unit)]
        for key, role, unit in users:
            _, token = await add_user(self.engine, key, role, unit)
            user = await authenticate(self.engine, token)
            assert user is not None
            self.who[key] = user.actor

    async def register(self, repeat_of: Ticket | None = None) -> Ticket:
        payload = {"type": "complaint", "channel": "phone", "content": "夜间施工噪音扰民"}
        if repeat_of is not None:
            payload["repeat_of"] = repeat_of.number
        return (await self.service.register(self.who["agent"], payload)).ticket

    async def answered_in_time(self, repeat_of: Ticket | None, units: list[str]) -> Ticket:
        t = await self.register(repeat_of)
        t = await self.act(
            "disp", t, "assign", units=units, lead=units[0] if len(units) > 1 else None
        )
        for unit in units:
            aid = next(a.id for a in t.assignments if a.unit_id == unit)
            t = await self.act(f"{unit}_h", t, "sign", assignment=aid)
            t = await self.act(
                f"{unit}_h",
                t,
                "draft_reply",
                assignment=aid,
                text="已核查，施工按规定时段进行，已要求降噪。",
            )
            t = await self.act(f"{unit}_l", t, "approve_reply", assignment=aid, approve=True)
        return t

    async def act(self, who: str, t: Ticket, action: str, **payload: object) -> Ticket:
        return await self.service.act(
            self.who[who], t.id, action, {"version": t.version, **payload}
        )


async def test_more_than_three_timely_replies_by_one_unit_stop_the_assigning(
    sqlite_engine: AsyncEngine,
) -> None:
    # rule D-6: a chain of four earlier tickets, water replied in time on each
    office = Office(sqlite_engine)
    await office.staff()
    previous = None
    for _ in range(4):
        previous = await office.answered_in_time(previous, ["water"])
    repeat = await office.register(previous)
    closed = await office.act(
        "disp",
        repeat,
        "stop_repeat",
        new_facts=False,
        decision="同一诉求已及时答复4次，无新情况，不再交办",
    )
    assert closed.closed_how == "repeat_not_assigned"


async def test_replies_are_counted_per_unit_over_a_star_of_links(
    sqlite_engine: AsyncEngine,
) -> None:
    # rule D-6: three repeats all linked to the first; water and roads replied in time on
    # several, but no single unit more than three times
    office = Office(sqlite_engine)
    await office.staff()
    first = await office.answered_in_time(None, ["water", "roads"])
    await office.answered_in_time(first, ["water", "roads"])
    await office.answered_in_time(first, ["water"])
    repeat = await office.register(first)
    with pytest.raises(TicketError) as info:  # water: 3 timely replies, roads: 2
        await office.act("disp", repeat, "stop_repeat", new_facts=False, decision="x")
    assert (info.value.code, info.value.rule) == ("repeat_limit_not_reached", "D-6")
    await office.answered_in_time(first, ["water"])  # water's fourth
    closed = await office.act(
        "disp",
        await office.register(first),
        "stop_repeat",
        new_facts=False,
        decision="已及时答复超过3次",
    )
    assert closed.closed_how == "repeat_not_assigned"
