"""The SLA watch's pure plan: working time counted back from a deadline (rule C-3), the timers
a ticket wants at each point of its life, who hears of them and whose miss it is (S-5)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.config.settings import WatchSettings
from hotline.ticketing.model import CallbackResult, EmergencyGround, TicketType
from hotline.ticketing.watch import (
    DISPATCH,
    DUTY,
    OVERDUE,
    REMIND,
    Timer,
    audiences,
    party,
    plan,
    text,
    unit_people,
)
from tests.unit.ticketing.conftest import (
    AGENT,
    CALENDAR,
    DISPATCHER,
    REVIEWER,
    SUPERVISOR,
    WATER_HANDLER,
    WATER_LEADER,
    World,
    at,
)

LEADS = WatchSettings()
H = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("end", "budget", "start"),
    [
        ("2026-11-16T14:15", H, "2026-11-16T11:45"),  # over the lunch break
        ("2026-11-16T09:00", H, "2026-11-13T17:00"),  # over the weekend
        ("2026-11-16T08:30", H, "2026-11-13T16:30"),  # a deadline at the day's first minute
        ("2026-11-16T13:30", H * 1.5, "2026-11-16T10:30"),  # ends where a period starts
        ("2026-11-16T14:00", H * 0.5, "2026-11-16T13:30"),  # uses a period up: its start
        ("2026-10-08T09:00", H, "2026-09-30T17:00"),  # over the National Day week
        ("2026-10-12T08:50", H * 7.5, "2026-10-10T08:50"),  # the make-up Saturday counts
        ("2026-11-15T12:00", H, "2026-11-13T16:30"),  # a Sunday deadline: Friday's end
    ],
)
def test_working_time_counted_back_from_a_deadline(end: str, budget: dt.timedelta, start: str):
    assert CALENDAR.subtract_working_time(at(end), budget) == at(start)


@given(
    st.datetimes(min_value=dt.datetime(2026, 1, 5), max_value=dt.datetime(2026, 12, 20)),
    st.integers(min_value=0, max_value=5 * 450),
)
def test_counting_back_then_forward_comes_to_the_same_deadline(start: dt.datetime, minutes: int):
    deadline = CALENDAR.add_working_time(at(start.isoformat()), dt.timedelta(minutes=minutes))
    back = CALENDAR.subtract_working_time(deadline, dt.timedelta(minutes=minutes))
    assert CALENDAR.add_working_time(back, dt.timedelta(minutes=minutes)) == deadline
    assert CALENDAR.working_time_between(back, deadline) == dt.timedelta(minutes=minutes)


def kinds(timers: list[Timer]) -> list[tuple[str, str, str]]:
    return [(t.stage, t.what, t.at.isoformat()[5:16]) for t in timers]


def test_the_plan_follows_the_ticket_stage_by_stage() -> None:
    w = World("2026-11-16T09:00")
    t = w.register()
    assert kinds(plan(t, LEADS, CALENDAR)) == [
        ("assign", "remind", "11-16T10:00"),
        ("assign", "overdue", "11-16T11:00"),
    ]
    t.assign(w.ctx(DISPATCHER, "2026-11-16T09:30"), ["water"])
    aid = t.assignments[0].id
    assert kinds(plan(t, LEADS, CALENDAR)) == [  # the assign timers are gone
        ("sign", "remind", "11-16T14:00"),
        ("sign", "overdue", "11-16T15:00"),
        ("handle-other", "remind", "11-20T09:30"),
        ("handle-other", "overdue", "11-23T09:30"),
    ]
    t.sign(w.ctx(WATER_HANDLER, "2026-11-16T10:00"), aid)
    assert [x[0] for x in kinds(plan(t, LEADS, CALENDAR))] == ["handle-other", "handle-other"]
    t.draft_reply(w.ctx(WATER_HANDLER), aid, "已修复路灯，恢复照明。")
    t.approve_reply(w.ctx(WATER_LEADER, "2026-11-17T10:00"), aid, True)
    assert kinds(plan(t, LEADS, CALENDAR)) == [  # with the office now: the callback clock
        ("callback", "remind", "11-18T17:00"),  # 2 working hours before
        ("callback", "overdue", "11-19T10:00"),
    ]
    keys = {x.key for x in plan(t, LEADS, CALENDAR)}
    t.review(w.ctx(REVIEWER, "2026-11-17T11:00"), aid, True)
    assert {x.key for x in plan(t, LEADS, CALENDAR)} == keys  # same deadline: same timers
    t.callback(w.ctx(AGENT, "2026-11-18T09:00"), CallbackResult.SATISFIED)
    assert plan(t, LEADS, CALENDAR) == []  # closed: nothing left to watch


def test_a_lead_of_zero_turns_a_reminder_off() -> None:
    w = World("2026-11-16T09:00")
    t = w.register()
    quiet = WatchSettings(remind_assign_hours=0)
    assert [x.what for x in plan(t, quiet, CALENDAR)] == [OVERDUE]


def test_who_hears_and_whose_miss_it_is() -> None:
    w = World("2026-11-16T09:00")
    t = w.register(type=TicketType.HELP)
    t.assign(w.ctx(DISPATCHER), ["water"])
    sign_remind, sign_overdue = [x for x in plan(t, LEADS, CALENDAR) if x.stage == "sign"]
    assert audiences(t, sign_remind) == [unit_people("water")]
    assert audiences(t, sign_overdue) == [unit_people("water"), DISPATCH]  # the office is told
    assert party(t, sign_overdue).kind == "unit" and party(t, sign_overdue).handler is None
    t.sign(w.ctx(WATER_HANDLER), t.assignments[0].id)
    handle = next(x for x in plan(t, LEADS, CALENDAR) if x.what == OVERDUE)
    assert party(t, handle).handler == WATER_HANDLER.user_id  # the one who signed


def test_the_emergency_plan_alerts_at_once_and_escalates_to_the_duty_leader() -> None:
    w = World("2026-11-17T23:40")
    t = w.register(type=TicketType.HELP)
    t.mark_emergency(w.ctx(AGENT, "2026-11-17T23:42"), EmergencyGround.HARM_NOW)
    (marked,) = plan(t, LEADS, CALENDAR)[:1]
    assert (marked.stage, marked.at) == ("emergency-marked", at("2026-11-17T23:42"))
    assert audiences(t, marked) == [DUTY]
    t.emergency_decision(w.ctx(SUPERVISOR, "2026-11-17T23:50"), True, "leading_group", "water")
    timers = plan(t, LEADS, CALENDAR)
    assert [(x.stage, x.what) for x in timers if x.at.hour == 23] == [
        ("emergency-marked", "alert"),
        ("emergency-decided", "alert"),
        ("emergency-assign", REMIND),  # 23:57, the wall clock (C-4)
    ]
    overdue = next(x for x in timers if x.stage == "emergency-assign" and x.what == OVERDUE)
    assert overdue.at == at("2026-11-18T00:00")
    assert DUTY in audiences(t, overdue) and party(t, overdue).kind == "office"
    decided = next(x for x in timers if x.stage == "emergency-decided")
    assert DUTY in audiences(t, decided)  # the leading group's decision: the duty leader too
    words = text(t, decided, CALENDAR.tz, "市水务局")
    assert "领导小组" in words and "市水务局" in words
    assert all("张三" not in text(t, x, CALENDAR.tz) for x in timers)  # rule Y-1
    assert all("13800138000" not in text(t, x, CALENDAR.tz) for x in timers)


def test_a_send_back_reopens_the_handling_timers_on_the_original_deadline() -> None:
    w = World("2026-11-16T09:00")
    t = w.register()
    t.assign(w.ctx(DISPATCHER), ["water"])
    aid = t.assignments[0].id
    t.sign(w.ctx(WATER_HANDLER), aid)
    handling = {x.key for x in plan(t, LEADS, CALENDAR)}
    t.draft_reply(w.ctx(WATER_HANDLER), aid, "已修复路灯，恢复照明。")
    t.approve_reply(w.ctx(WATER_LEADER, "2026-11-17T10:00"), aid, True)
    assert {x.stage for x in plan(t, LEADS, CALENDAR)} == {"callback"}
    t.review(w.ctx(REVIEWER, "2026-11-17T11:00"), aid, False, "缺少现场照片")
    assert {x.key for x in plan(t, LEADS, CALENDAR)} == handling  # rule H-5: same deadline


def test_a_justified_return_moves_the_timers_to_the_unit_that_takes_it_over() -> None:
    w = World("2026-11-16T09:00")
    t = w.register()
    t.assign(w.ctx(DISPATCHER), ["water"])
    first = t.assignments[0].id
    t.request_return(
        w.ctx(WATER_HANDLER, "2026-11-16T10:00"), first, "非本单位职责", "三定", "roads"
    )
    t.decide_return(w.ctx(DISPATCHER, "2026-11-16T11:00"), first, True, "", ["roads"])
    parts = {x.part for x in plan(t, LEADS, CALENDAR)}
    assert parts == {t.assignments[1].id}  # nothing left of the returned part
    sign = next(x for x in plan(t, LEADS, CALENDAR) if x.stage == "sign" and x.what == OVERDUE)
    assert sign.due == at("2026-11-16T16:30")  # 4 working hours from the reassignment
    assert audiences(t, sign)[0] == unit_people("roads")


def test_until_assigned_the_two_hour_deadline_passes_with_a_notice_the_miss_at_the_longer() -> None:
    # rule D-1: 2 working hours for one unit, 1 working day for several with a lead; which
    # applies is known only when the office assigns
    w = World("2026-11-16T09:00")
    t = w.register()
    assert kinds(plan(t, LEADS, CALENDAR, multi_days=1.0)) == [
        ("assign", "remind", "11-16T10:00"),
        ("assign", "late", "11-16T11:00"),  # a notice, no mark, no violation
        ("assign", "overdue", "11-17T09:00"),  # 1 working day: missed whichever way
    ]


def test_a_pending_extension_holds_the_handling_timers_and_a_granted_one_is_a_new_deadline() -> (
    None
):
    w = World("2026-11-16T09:00")
    t = w.register()
    t.assign(w.ctx(DISPATCHER), ["water"])
    aid = t.assignments[0].id
    t.sign(w.ctx(WATER_HANDLER), aid)
    a = t.assignments[0]
    assert a.handle.due == at("2026-11-23T09:00")
    ctx = w.ctx(WATER_LEADER, "2026-11-23T08:00")
    t.request_extension(ctx, aid, "需协调", 2, "已查看", "周三完成")
    assert [x.stage for x in plan(t, LEADS, CALENDAR)] == []  # the office decides first
    t.mark_overdue(w.ctx(SUPERVISOR, "2026-11-23T09:00"), aid, "handle-other")
    t.decide_extension(w.ctx(SUPERVISOR, "2026-11-23T10:00"), aid, True, 2)
    assert t.assignments[0].handle.overdue is False  # the moved deadline is a new one to meet
    assert {x.what for x in plan(t, LEADS, CALENDAR)} == {REMIND, OVERDUE}


def test_a_return_asked_under_the_emergency_plan_is_the_units_transfer_opinion() -> None:
    # rule E-4: a unit that finds it is not its business gives a transfer opinion with reasons
    w = World("2026-11-17T23:40")
    t = w.register(type=TicketType.HELP)
    t.mark_emergency(w.ctx(AGENT), EmergencyGround.HARM_NOW)
    t.emergency_decision(w.ctx(SUPERVISOR, "2026-11-17T23:45"), True, "office", "water")
    t.assign(w.ctx(DISPATCHER, "2026-11-17T23:50"), ["water"])
    aid = t.assignments[0].id
    t.request_return(w.ctx(WATER_HANDLER, "2026-11-18T00:05"), aid, "属燃气管线", "三定方案", "gas")
    a = t.assignments[0]
    assert a.response is not None and a.response.done == at("2026-11-18T00:05")
    assert (a.response_kind, a.response_text) == ("transfer_opinion", "属燃气管线")
    assert not [x for x in plan(t, LEADS, CALENDAR) if x.stage == "emergency-response"]
