"""The ticket service on SQLite: repeat suppression counts the linked tickets' timely replies."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import FixedClock
from hotline.config.settings import RulesSettings
from hotline.ticketing.model import Actor, Role, TicketError
from hotline.ticketing.service import TicketService
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.users import add_unit, add_user, authenticate
from tests.unit.ticketing.conftest import CALENDAR, at


async def actors(engine: AsyncEngine) -> dict[str, Actor]:
    await add_unit(engine, "water", "市水务局")
    out = {}
    for key, role, unit in (
        ("agent", Role.AGENT, None),
        ("disp", Role.DISPATCHER, None),
        ("wh", Role.UNIT_HANDLER, "water"),
        ("wl", Role.UNIT_LEADER, "water"),
    ):
        _, token = await add_user(engine, key, role, unit)
        user = await authenticate(engine, token)
        assert user is not None
        out[key] = user.actor
    return out


async def test_repeat_suppression_counts_timely_replies_on_the_linked_tickets(
    sqlite_engine: AsyncEngine,
) -> None:
    # rule D-6
    who = await actors(sqlite_engine)
    clock = FixedClock(at("2026-11-16T09:00"))
    service = TicketService(
        sqlite_engine, SlaEngine(CALENDAR, RulesSettings()), clock, "Asia/Shanghai"
    )
    previous = None
    for _ in range(4):  # four earlier rounds of the same request, each answered in time
        payload = {"type": "complaint", "channel": "phone", "content": "噪音扰民"}
        if previous:
            payload["repeat_of"] = previous.number
        t = (await service.register(who["agent"], payload)).ticket
        t = await service.act(
            who["disp"], t.id, "assign", {"version": t.version, "units": ["water"]}
        )
        aid = t.assignments[0].id
        t = await service.act(who["wh"], t.id, "sign", {"version": t.version, "assignment": aid})
        t = await service.act(
            who["wh"],
            t.id,
            "draft_reply",
            {"version": t.version, "assignment": aid, "text": "已核查，施工已按规定时间进行。"},
        )
        t = await service.act(
            who["wl"],
            t.id,
            "approve_reply",
            {"version": t.version, "assignment": aid, "approve": True},
        )
        previous = t
    assert previous is not None
    repeat = (
        await service.register(
            who["agent"],
            {
                "type": "complaint",
                "channel": "phone",
                "content": "噪音扰民",
                "repeat_of": previous.number,
            },
        )
    ).ticket
    # earlier chain: 4 tickets, one timely reply each: more than 3
    closed = await service.act(
        who["disp"],
        repeat.id,
        "stop_repeat",
        {"version": repeat.version, "new_facts": False, "decision": "已及时答复4次，不再交办"},
    )
    assert closed.closed_how == "repeat_not_assigned"

    short = (
        await service.register(
            who["agent"],
            {
                "type": "complaint",
                "channel": "phone",
                "content": "噪音扰民",
                "repeat_of": (await service.get(who["disp"], previous.repeat_of or "")).number,
            },
        )
    ).ticket
    with pytest.raises(TicketError) as info:  # that chain holds only 3 timely replies
        await service.act(
            who["disp"],
            short.id,
            "stop_repeat",
            {"version": short.version, "new_facts": False, "decision": "x"},
        )
    assert (info.value.code, info.value.rule) == ("repeat_limit_not_reached", "D-6")
