"""The SLA watch on a fake clock, against the real database: every reminder and overdue mark of
a ticket's life fires at its working-time minute (a weekend; the 2026 National Day holiday with
its make-up Saturday), an extension moves the handling reminder, the emergency plan's clocks run
on the wall clock through a night, and rule S-6's thresholds raise their notice once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import FixedClock
from hotline.config.settings import RulesSettings, WatchSettings
from hotline.jobs import JobQueue, Worker, jobs
from hotline.ticketing.model import Actor, Role
from hotline.ticketing.notices import SEND_SMS, Notifier
from hotline.ticketing.service import TicketService
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.sla_watch import TIMER, SlaWatch, TimerSync
from hotline.ticketing.tables import notifications, violations
from hotline.ticketing.ticket import Ticket
from hotline.ticketing.users import add_unit, add_user, authenticate
from tests.unit.ticketing.conftest import CALENDAR, at

CITIZEN = {"citizen_name": "李秀英", "citizen_phone": "13912345678"}
MINUTE = dt.timedelta(minutes=1)


class Office:
    """The ticket service with its SLA timers, a job worker on the same fake clock, staff."""

    def __init__(self, engine: AsyncEngine, start: str) -> None:
        self.engine = engine
        self.clock = FixedClock(at(start))
        self.sync = TimerSync(WatchSettings(), CALENDAR, self.clock, multi_days=1.0)
        self.service = TicketService(
            engine,
            SlaEngine(CALENDAR, RulesSettings()),
            self.clock,
            "Asia/Shanghai",
            watch=self.sync,
        )
        self.pushed: list[tuple[str, dict[str, Any]]] = []
        self.watch = SlaWatch(self.service, Notifier(self._push))
        self.worker = Worker(
            JobQueue(engine, self.clock, "node-a"), {TIMER: self.watch.fire}, concurrency=20
        )
        self.who: dict[str, Actor] = {}
        self.fired: list[tuple[dt.datetime, str]] = []  # (clock time, part/stage/what)

    async def _push(self, user_id: str, message: Any) -> None:
        self.pushed.append((user_id, dict(message)))

    async def staff(self, units: tuple[str, ...] = ("water",)) -> None:
        people = [
            ("agent", Role.AGENT, None),
            ("disp", Role.DISPATCHER, None),
            ("rev", Role.REVIEWER, None),
            ("sup", Role.SUPERVISOR, None),
            ("duty", Role.DUTY_LEADER, None),
            ("disc", Role.DISCIPLINE_OFFICER, None),
        ]
        for unit in units:
            await add_unit(self.engine, unit, {"water": "市水务局"}.get(unit, unit))
            people += [
                (f"{unit}_h", Role.UNIT_HANDLER, unit),
                (f"{unit}_l", Role.UNIT_LEADER, unit),
            ]
        for key, role, unit in people:
            phone = "13700000001" if key == "duty" else ""
            _, token = await add_user(self.engine, key, role, unit, phone=phone)
            user = await authenticate(self.engine, token)
            assert user is not None
            self.who[key] = user.actor

    async def register(self, **payload: Any) -> Ticket:
        body = {"type": "complaint", "channel": "phone", "content": "水管爆裂，路面积水", **CITIZEN}
        body.update(payload)
        return (await self.service.register(self.who["agent"], body)).ticket

    async def act(self, who: str, ticket: Ticket, action: str, **payload: Any) -> Ticket:
        async with self.service.uow() as uow:  # an overdue mark is a change: read it again
            payload["version"] = (await uow.tickets.get(ticket.id)).version
        return await self.service.act(self.who[who], ticket.id, action, payload)

    async def until(self, when: str) -> None:
        """Move the clock to ``when``, firing every timer due on the way at its own minute —
        and checking, a minute before each, that it had not fired yet."""
        end = at(when)
        while True:
            async with self.engine.connect() as conn:
                nxt = (
                    await conn.execute(
                        sa.select(sa.func.min(jobs.c.due_at)).where(
                            jobs.c.kind == TIMER, jobs.c.state == "due"
                        )
                    )
                ).scalar()
            if nxt is None:
                break
            nxt = nxt if nxt.tzinfo else nxt.replace(tzinfo=dt.UTC)
            if nxt > end:
                break
            if nxt - MINUTE >= self.clock.now():
                self.clock.current = nxt - MINUTE
                assert await self.worker.run_once() == 0, f"fired before {nxt}"
            self.clock.current = max(self.clock.now(), nxt)
            await self._drain()
        self.clock.current = end
        await self._drain()

    async def _drain(self) -> None:
        before = self.watch.fired
        while True:
            claimed = await self.worker.queue.claim([TIMER], 50)
            if not claimed:
                break
            for job in claimed:
                fired_before = self.watch.fired
                await self.worker.handlers[TIMER](job)
                await self.worker.queue.complete(job)
                if self.watch.fired > fired_before:
                    stage, what = job.key.split("/")[2:4]
                    self.fired.append((self.clock.now(), f"{stage}/{what}"))
        assert self.watch.fired >= before

    async def rows(self, table: sa.Table, *where: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.select(table).where(*where))).all())


def local(fired: list[tuple[dt.datetime, str]]) -> list[tuple[str, str]]:
    tz = dt.timezone(dt.timedelta(hours=8))
    return [(t.astimezone(tz).strftime("%m-%d %H:%M"), what) for t, what in fired]


@pytest.fixture
async def office(engine: AsyncEngine) -> Office:
    o = Office(engine, "2026-11-13T16:00")
    await o.staff()
    return o


async def test_a_tickets_life_across_a_weekend_fires_each_reminder_and_mark_at_its_minute(
    office: Office,
) -> None:
    t = await office.register()  # Friday 16:00; assign due Monday 09:00 (rule D-1)
    await office.until("2026-11-16T08:45")
    t = await office.act("disp", t, "assign", units=["water"])  # in time: its mark is dropped
    aid = t.assignments[0].id
    await office.until("2026-11-16T15:00")  # the sign deadline 14:15 passes unsigned
    t = await office.act("water_h", t, "sign", assignment=aid)
    await office.until("2026-11-23T08:00")  # handling due Monday 11-23 08:45 (rule H-1)
    t = await office.act(
        "water_l",
        t,
        "request_extension",
        assignment=aid,
        reason="需协调施工单位",
        extra_days=2,
        progress="已现场查看",
        plan="周三前完成修复",
    )
    t = await office.act("sup", t, "decide_extension", assignment=aid, approve=True, days=2)
    assert t.assignments[0].handle.due == at("2026-11-25T08:45")  # rule H-3
    await office.until("2026-11-24T10:00")
    t = await office.act("water_h", t, "draft_reply", assignment=aid, text="已完成抢修，恢复供水。")
    t = await office.act("water_l", t, "approve_reply", assignment=aid, approve=True)
    await office.until("2026-11-25T09:00")  # callback due Thursday 10:00 (B-1)
    t = await office.act("rev", t, "review", assignment=aid, passed=True)
    await office.until("2026-11-26T11:00")
    t = await office.act("agent", t, "callback", result="satisfied")
    await office.until("2026-12-31T17:00")  # nothing else is left to fire

    assert local(office.fired) == [
        ("11-13 17:00", "assign/remind"),  # 1 working hour before Monday 09:00
        ("11-16 11:45", "sign/remind"),  # 1 working hour before 14:15, over the lunch break
        ("11-16 14:15", "sign/overdue"),
        ("11-20 08:45", "handle-other/remind"),  # 1 working day before Monday 08:45
        ("11-24 08:45", "handle-other/remind"),  # moved with the extension (not 11-23)
        ("11-25 17:00", "callback/remind"),  # 2 working hours before Thursday 10:00
        ("11-26 10:00", "callback/overdue"),
    ]
    events = [e for e in (await office.service.events(office.who["sup"], t.id))[1]]
    overdue = [(e.data["stage"], e.rule, e.at) for e in events if e.action == "overdue"]
    assert overdue == [
        ("sign", "D-3", at("2026-11-16T14:15")),
        ("callback", "B-1", at("2026-11-26T10:00")),
    ]
    found = {(v.stage, v.party, v.unit_id, v.handler_id) for v in await office.rows(violations)}
    assert found == {
        ("sign", "unit", "water", office.who["water_h"].user_id),  # its one handler (D-7)
        ("callback", "office", None, None),  # the office's own miss
    }
    texts = [n.text for n in await office.rows(notifications)]
    assert texts and not any("李秀英" in x or "13912345678" in x or "水管" in x for x in texts)
    sign_told = {
        n.user_id
        for n in await office.rows(notifications, notifications.c.key.like("%/sign/overdue/%"))
    }
    assert sign_told == {
        office.who[k].user_id for k in ("water_h", "water_l", "disp", "sup")
    }  # the unit and the office (rule S-4)


async def test_the_national_day_holiday_and_its_make_up_saturday(engine: AsyncEngine) -> None:
    office = Office(engine, "2026-09-30T16:00")
    await office.staff()
    t = await office.register(type="consultation")  # assign due Thursday Oct 8 09:00
    await office.until("2026-10-08T08:50")
    t = await office.act("disp", t, "assign", units=["water"])
    aid = t.assignments[0].id
    await office.until("2026-10-08T10:00")
    t = await office.act("water_h", t, "sign", assignment=aid)  # in time: no sign timers fire
    await office.until("2026-10-13T09:00")

    assert local(office.fired) == [
        ("09-30 17:00", "assign/remind"),  # the week of holidays counts nothing
        ("10-10 08:50", "handle-consultation/remind"),  # Saturday Oct 10 is a working day
        ("10-12 08:50", "handle-consultation/overdue"),  # 3 working days: Oct 9, 10, 12
    ]
    (v,) = await office.rows(violations)
    assert (v.stage, v.rule, v.unit_id, v.handler_id, v.month) == (
        "handle-consultation",
        "H-1",
        "water",
        office.who["water_h"].user_id,  # the handler who signed it
        "2026-10",
    )


async def test_the_emergency_plans_clocks_run_on_the_wall_clock_through_a_night(
    engine: AsyncEngine,
) -> None:
    office = Office(engine, "2026-11-17T23:40")
    await office.staff()
    t = await office.register(type="help")
    office.clock.current = at("2026-11-17T23:42")
    t = await office.act("agent", t, "mark_emergency", ground="harm_now")
    await office.until("2026-11-17T23:50")
    t = await office.act(
        "duty", t, "emergency_decision", respond=True, level="office", unit="water"
    )
    await office.until("2026-11-18T00:05")  # the office assigns 5 minutes late
    t = await office.act("disp", t, "assign", units=["water"])
    aid = t.assignments[0].id
    await office.until("2026-11-18T00:38")  # the first response is 3 minutes late
    t = await office.act("water_h", t, "sign", assignment=aid)
    t = await office.act(
        "water_h",
        t,
        "emergency_response",
        assignment=aid,
        kind="initial_response",
        text="已派抢修队",
    )
    await office.until("2026-11-18T02:00")
    t = await office.act("water_h", t, "emergency_finished", assignment=aid)
    assert t.assignments[0].result is not None
    assert t.assignments[0].result.due == at("2026-11-18T17:30")  # 1 working day (E-4)
    await office.until("2026-11-18T16:00")
    t = await office.act(
        "water_h", t, "draft_reply", assignment=aid, text="管道已修复，供水恢复正常。"
    )
    t = await office.act("water_l", t, "approve_reply", assignment=aid, approve=True)
    await office.until("2026-11-18T18:00")

    assert local(office.fired) == [
        ("11-17 23:42", "emergency-marked/alert"),  # the duty leader at once (E-2)
        ("11-17 23:50", "emergency-decided/alert"),  # the unit's handler, the dispatchers (E-3)
        ("11-17 23:57", "emergency-assign/remind"),
        ("11-18 00:00", "emergency-assign/overdue"),  # 10 minutes, at midnight (C-4)
        ("11-18 00:25", "emergency-response/remind"),
        ("11-18 00:35", "emergency-response/overdue"),  # 30 minutes after the assignment
        ("11-18 15:30", "emergency-result/remind"),  # 2 working hours before 17:30
    ]
    duty = office.who["duty"].user_id
    told = [
        n.key.split("/")[2] + "/" + n.key.split("/")[3]
        for n in await office.rows(notifications, notifications.c.user_id == duty)
    ]
    assert sorted(told) == sorted(
        ["emergency-marked/alert", "emergency-assign/overdue", "emergency-response/overdue"]
    )  # alerted, then escalated to after each missed deadline
    sms = await office.rows(jobs, jobs.c.kind == SEND_SMS)
    assert sorted(j.key.split("/")[2] for j in sms if j.key.endswith("#" + duty)) == sorted(
        ["emergency-marked", "emergency-assign", "emergency-response"]
    )
    decided = await office.rows(notifications, notifications.c.key.like("%emergency-decided%"))
    assert {n.user_id for n in decided} >= {office.who["water_h"].user_id}
    assert all("市水务局" in n.text for n in decided)
    assert duty in {u for u, m in office.pushed if m["type"] == "notice"}


async def test_s6_the_third_miss_in_a_month_and_the_fifth_in_a_quarter_raise_one_notice(
    engine: AsyncEngine,
) -> None:
    office = Office(engine, "2026-10-12T09:00")
    await office.staff()
    handler = office.who["water_h"].user_id

    async def miss_sign(day: str) -> None:
        office.clock.current = max(office.clock.now(), at(f"{day}T09:00"))
        t = await office.register()
        t = await office.act("disp", t, "assign", units=["water"])  # sign due 14:30 (D-3)
        await office.until(f"{day}T15:00")
        aid = t.assignments[0].id  # signed late, then answered in time: one miss only
        t = await office.act("water_h", t, "sign", assignment=aid)
        t = await office.act(
            "water_h", t, "draft_reply", assignment=aid, text="已处理完毕，情况已答复。"
        )
        await office.act("water_l", t, "approve_reply", assignment=aid, approve=True)

    async def s6() -> list[tuple[str, str, str]]:
        rows = await office.rows(notifications, notifications.c.kind.like("s6-%"))
        tz = dt.timezone(dt.timedelta(hours=8))
        return sorted(
            (
                r.kind,
                r.user_id,
                r.created_at.replace(tzinfo=r.created_at.tzinfo or dt.UTC)
                .astimezone(tz)
                .strftime("%m-%d %H:%M"),
            )
            for r in rows
        )

    told = sorted([office.who["sup"].user_id, office.who["disc"].user_id])
    await miss_sign("2026-10-12")
    await miss_sign("2026-10-13")
    assert await s6() == []
    await miss_sign("2026-10-14")  # the third in October
    assert await s6() == sorted(("s6-month", u, "10-14 14:30") for u in told)
    await miss_sign("2026-11-02")
    assert len(await s6()) == 2  # the fourth raises nothing new
    await miss_sign("2026-11-03")  # the fifth in the fourth quarter
    assert await s6() == sorted(
        [("s6-month", u, "10-14 14:30") for u in told]
        + [("s6-quarter", u, "11-03 14:30") for u in told]
    )
    counted = await office.rows(violations, violations.c.handler_id == handler)
    assert len(counted) == 5 and {v.quarter for v in counted} == {"2026-Q4"}


async def test_an_assignment_to_several_units_in_a_working_day_is_no_miss_one_late_is(
    engine: AsyncEngine,
) -> None:
    # rule D-1: several units with a lead have 1 working day, one unit 2 working hours
    office = Office(engine, "2026-11-16T09:00")
    await office.staff(("water", "roads"))
    multi, single = await office.register(), await office.register()
    await office.until("2026-11-16T14:00")
    await office.act("disp", multi, "assign", units=["water", "roads"], lead="water")
    await office.act("disp", single, "assign", units=["water"])
    await office.until("2026-11-16T14:30")
    assert ("11-16 11:00", "assign/late") in local(office.fired)  # the office was told
    assert not [f for f in office.fired if f[1] == "assign/overdue"]
    found = [(v.ticket_number, v.stage, v.party) for v in await office.rows(violations)]
    assert found == [(single.number, "assign", "office")]  # recorded when it was made late
    events = (await office.service.events(office.who["sup"], multi.id))[1]
    assert not [e for e in events if e.action == "overdue"]


async def test_a_reminder_whose_time_has_passed_is_not_sent_and_changed_leads_move_timers(
    engine: AsyncEngine,
) -> None:
    office = Office(engine, "2026-11-16T10:30")
    await office.staff()
    t = await office.register()  # assign due 14:00 (10:30–12:00, then 13:30–14:00)
    keys = {k: v.at for k, v in office.sync.plan(t).items()}
    assert {k.split("/")[3] for k in keys} == {"remind", "late", "overdue"}
    # the city moves the assign reminder to 30 minutes before: the timer moves with the file
    office.sync.leads = WatchSettings(remind_assign_hours=0.5)
    async with office.service.uow() as uow:
        fresh = await uow.tickets.get(t.id)
        assert await office.sync.sync(uow.conn, fresh) == 1
        await uow.commit()
    remind = next(k for k in keys if "/remind/" in k)
    (row,) = await office.rows(jobs, jobs.c.key == remind)
    due = row.due_at if row.due_at.tzinfo else row.due_at.replace(tzinfo=dt.UTC)
    assert due == at("2026-11-16T13:30")
    # a deadline whose reminder time is behind us gets no reminder, only its mark
    office.clock.current = at("2026-11-16T13:45")
    office.sync.leads = WatchSettings(remind_assign_hours=3.0)
    late = await office.register()  # due 15:45; 3 working hours before it is 11:15
    got = {r.key.split("/")[3] for r in await office.rows(jobs, jobs.c.ref == late.id)}
    assert got == {"late", "overdue"}  # the reminder's time is past: not sent


async def test_an_emergency_decision_names_a_linked_unit(engine: AsyncEngine) -> None:
    from hotline.errors import TicketError

    office = Office(engine, "2026-11-17T23:40")
    await office.staff()
    t = await office.register(type="help")
    t = await office.act("agent", t, "mark_emergency", ground="harm_now")
    with pytest.raises(TicketError) as info:
        await office.act("duty", t, "emergency_decision", respond=True, unit="wter")
    assert (info.value.code, info.value.rule) == ("unknown_unit", "D-2")


async def test_two_misses_of_one_handler_committed_together_still_raise_the_s6_notice(
    pg_engine: AsyncEngine,
) -> None:
    # two overdue marks for the same handler at the same minute, in two transactions: the
    # second counts after the first commits (a lock per handler), so the third miss is seen
    import asyncio

    office = Office(pg_engine, "2026-11-02T09:00")
    await office.staff()
    handler = office.who["water_h"].user_id
    notifier = Notifier()
    tz = dt.timezone(dt.timedelta(hours=8))

    async def miss(n: int, conn: Any) -> None:
        await notifier.violation(
            conn,
            f"probe-{n}",
            ticket=("t", f"N{n}"),
            stage="sign",
            rule="D-3",
            party="unit",
            unit_id="water",
            handler_id=handler,
            due=at(f"2026-11-0{n + 2}T14:30"),
            now=office.clock.now(),
            tz=tz,
        )

    async with pg_engine.begin() as conn:
        await miss(1, conn)
    first = await pg_engine.connect()
    second = await pg_engine.connect()
    try:
        await first.begin()
        await second.begin()
        await miss(2, first)
        racing = asyncio.ensure_future(miss(3, second))  # waits on the first's lock
        await asyncio.sleep(0.3)
        assert not racing.done()
        await first.commit()
        await racing
        await second.commit()
    finally:
        await first.close()
        await second.close()
    kinds = sorted(r.kind for r in await office.rows(notifications))
    assert kinds == ["s5-unit-sign", "s5-unit-sign", "s6-month", "s6-month"]


async def test_tickets_opened_before_the_watch_get_their_timers_from_a_resync(
    engine: AsyncEngine,
) -> None:
    from hotline.ticketing.sla_watch import resync

    office = Office(engine, "2026-11-16T09:00")
    await office.staff()
    office.service.watch = None  # as before the upgrade that brought the watch
    t = await office.register()
    closed = await office.register(type="consultation")
    await office.act("agent", closed, "answer_on_spot", answer="请拨打供水热线。")
    assert await office.rows(jobs, jobs.c.kind == TIMER) == []
    office.service.watch = office.sync
    assert await resync(office.service, batch=1) == 1  # the open one only
    got = sorted(r.key.split("/")[3] for r in await office.rows(jobs, jobs.c.ref == t.id))
    assert got == ["late", "overdue", "remind"]
    assert await resync(office.service) == 1  # again: nothing changes
    assert len(await office.rows(jobs, jobs.c.kind == TIMER)) == 3
