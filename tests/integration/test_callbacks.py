"""Satisfaction callbacks against the real database on a fake clock (rules B-1 … B-3): the
campaign starts when a ticket enters CALLBACK, calls only inside the calling window, spaces its
attempts by outcome, switches to self-evaluation when no call fits before the deadline, and the
answer decides the ticket — closed, or back to its unit with the reason, or the office's. The
cap on calls at once holds across claimers; a lease that runs out is one failed attempt."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.bootstrap import EVENT_ROUTES, callback_campaign
from hotline.callbacks.handlers import CallbackJobs
from hotline.callbacks.plan import Campaign
from hotline.callbacks.store import (
    DECIDE,
    EVALUATION_MESSAGE,
    START,
    Campaigns,
    callbacks,
    figures,
)
from hotline.config.settings import RulesSettings, WatchSettings, load_settings
from hotline.jobs import JobQueue, Outbox, Worker, jobs
from hotline.sms import FakeSms
from hotline.ticketing.service import TicketService
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.sla_watch import TimerSync
from hotline.ticketing.tables import office_tasks
from hotline.ticketing.ticket import Ticket
from tests.integration.ticketing.test_sla_watch import Office
from tests.unit.ticketing.conftest import CALENDAR, at

MINUTE = dt.timedelta(minutes=1)
URL = "https://12345.example.gov.cn/evaluate/"
REPLY = "已完成抢修，恢复供水，现场已清理。"
AGAIN = "已更换整段管道，复查无渗漏。"


class Hotline(Office):
    """The office of the SLA tests with the outbox on, the campaign and its jobs."""

    def __init__(self, engine: AsyncEngine, start: str, **settings: str) -> None:
        super().__init__(engine, start)
        env = {f"HOTLINE_CALLBACK_{k.upper()}": v for k, v in settings.items()}
        self.campaign: Campaign = callback_campaign(load_settings(env=env))
        self.service = TicketService(
            engine,
            SlaEngine(CALENDAR, RulesSettings()),
            self.clock,
            "Asia/Shanghai",
            outbox=Outbox(EVENT_ROUTES, self.clock),
            watch=TimerSync(WatchSettings(), CALENDAR, self.clock, multi_days=1.0),
        )
        self.campaigns = Campaigns(engine, self.campaign, self.clock, cap=10)
        self.sms = FakeSms()
        handlers = CallbackJobs(
            self.campaigns, self.service, self.sms, evaluate_url=URL, timezone="Asia/Shanghai"
        )
        self.jobs = Worker(
            JobQueue(engine, self.clock, "node-a"),
            {START: handlers.start, DECIDE: handlers.decide, EVALUATION_MESSAGE: handlers.message},
            concurrency=20,
        )

    async def drain(self) -> None:
        while await self.jobs.run_once():
            pass

    async def to_callback(self, **payload: Any) -> Ticket:
        t = await self.register(**payload)
        t = await self.act("disp", t, "assign", units=["water"])
        aid = t.assignments[0].id
        t = await self.act("water_h", t, "sign", assignment=aid)
        t = await self.act(
            "water_h", t, "draft_reply", assignment=aid, text="已完成抢修，恢复供水，现场已清理。"
        )
        t = await self.act("water_l", t, "approve_reply", assignment=aid, approve=True)
        t = await self.act("rev", t, "review", assignment=aid, passed=True)
        assert t.state.value == "callback"
        await self.drain()
        return t

    async def campaign_row(self, t: Ticket) -> Any:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(sa.select(callbacks).where(callbacks.c.ticket_id == t.id))
            ).one()

    async def ticket(self, t: Ticket) -> Ticket:
        async with self.service.uow() as uow:
            return await uow.tickets.get(t.id)

    def code(self) -> str:
        return self.sms.sent[-1][1].rpartition("/")[2]


@pytest.fixture
async def hotline(engine: AsyncEngine) -> Hotline:
    h = Hotline(engine, "2026-11-24T10:00")  # a Tuesday
    await h.staff()
    return h


async def test_a_phone_ticket_entering_callback_gets_its_first_call_now(hotline: Hotline) -> None:
    t = await hotline.to_callback()
    row = await hotline.campaign_row(t)
    assert (row.mode, row.state, row.cycle) == ("phone", "calling", 1)
    assert row.due_at.replace(tzinfo=dt.UTC) == hotline.clock.now()
    assert row.units == "water"
    assert row.deadline.replace(tzinfo=dt.UTC) == t.callback_deadline.due  # B-1: 2 working days
    [p] = await hotline.campaigns.claim("node-a")
    assert p.channel_id == f"survey-{t.number}-1"
    assert await hotline.campaigns.claim("node-a") == []  # taken once


async def test_the_survey_answer_decides_the_ticket(hotline: Hotline) -> None:
    satisfied = await hotline.to_callback()
    unhappy = await hotline.to_callback()
    a, b = sorted(await hotline.campaigns.claim("node-a"), key=lambda p: p.number)
    assert await hotline.campaigns.finish(a, "answered", answer="basically_satisfied") == "done"
    reason = "漏水仍未修好"
    await hotline.campaigns.finish(b, "answered", answer="unsatisfied", reason=reason)
    await hotline.drain()
    closed = await hotline.ticket(satisfied)
    assert closed.state.value == "closed"
    assert closed.callbacks[-1].result.value == "basically_satisfied"
    back = await hotline.ticket(unhappy)
    assert back.state.value == "assigned" and back.rehandled == 1  # B-2: to its unit again
    assert back.assignments[-1].unit_id == "water"
    assert back.callbacks[-1].note == reason
    # re-handled and unsatisfied again: the office decides
    aid = back.assignments[-1].id
    t = await hotline.act("water_h", back, "sign", assignment=aid)
    t = await hotline.act(
        "water_h", t, "draft_reply", assignment=aid, text="已更换整段管道，复查无渗漏。"
    )
    t = await hotline.act("water_l", t, "approve_reply", assignment=aid, approve=True)
    t = await hotline.act("rev", t, "review", assignment=aid, passed=True)
    await hotline.drain()
    [again] = await hotline.campaigns.claim("node-a")
    assert (again.cycle, again.n) == (2, 2)  # the ticket's second attempt: survey-<n>-2
    await hotline.campaigns.finish(again, "answered", answer="unsatisfied")
    await hotline.drain()
    t = await hotline.ticket(unhappy)
    assert t.state.value == "dissatisfied" and t.rehandled == 1
    tasks = await hotline.rows(office_tasks, office_tasks.c.ticket_id == t.id)
    assert [r.kind for r in tasks] == ["office_decision"]


async def test_attempts_are_spaced_by_outcome_then_the_code_goes_out(hotline: Hotline) -> None:
    t = await hotline.to_callback()
    start = hotline.clock.now()
    [p] = await hotline.campaigns.claim("node-a")
    hotline.clock.current = start + 2 * MINUTE  # the attempt took two minutes
    await hotline.campaigns.finish(p, "busy")
    row = await hotline.campaign_row(t)
    again = start + 2 * MINUTE + dt.timedelta(minutes=10)  # from its end; busy: sooner
    assert row.due_at.replace(tzinfo=dt.UTC) == again
    hotline.clock.current = again - MINUTE
    assert await hotline.campaigns.claim("node-a") == []
    hotline.clock.current = again
    [p2] = await hotline.campaigns.claim("node-a")
    await hotline.campaigns.finish(p2, "no_answer")
    row = await hotline.campaign_row(t)
    assert row.due_at.replace(tzinfo=dt.UTC) == hotline.clock.now() + dt.timedelta(hours=1)
    hotline.clock.current += dt.timedelta(hours=1)
    [p3] = await hotline.campaigns.claim("node-a")
    assert p3.n == 3
    assert await hotline.campaigns.finish(p3, "no_key") == "evaluating"  # 3 attempts spent
    await hotline.drain()
    [(phone, text)] = hotline.sms.sent
    assert phone == "13912345678"  # the citizen's own number, the original channel
    assert t.number in text and URL in text and "李秀英" not in text  # rule Y-1
    row = await hotline.campaign_row(t)
    assert [o[1] for o in json.loads(row.outcomes)] == ["busy", "no_answer", "no_key"]
    assert (await hotline.campaigns.redeem(hotline.code(), "satisfied")).status == "ok"
    assert (await hotline.campaigns.redeem(hotline.code(), "unsatisfied")).status == "used"
    await hotline.drain()
    closed = await hotline.ticket(t)
    assert closed.state.value == "closed"
    assert closed.callbacks[-1].method == "self_evaluation"


async def test_a_callback_due_at_2030_is_placed_at_0900_the_next_morning(
    engine: AsyncEngine,
) -> None:
    h = Hotline(engine, "2026-11-24T16:00")
    await h.staff()
    t = await h.register()  # the reply passes review in the evening (the office works late)
    t = await h.act("disp", t, "assign", units=["water"])
    aid = t.assignments[0].id
    for action, extra in (
        ("sign", {}),
        ("draft_reply", {"text": REPLY}),
        ("approve_reply", {"approve": True}),
    ):
        who = "water_l" if action == "approve_reply" else "water_h"
        t = await h.act(who, t, action, assignment=aid, **extra)
    h.clock.current = at("2026-11-24T20:30")
    t = await h.act("rev", t, "review", assignment=aid, passed=True)
    await h.drain()
    row = await h.campaign_row(t)
    assert row.due_at.replace(tzinfo=dt.UTC) == at("2026-11-25T09:00")  # never at night
    h.clock.current = at("2026-11-25T08:59")
    assert await h.campaigns.claim("node-a") == []
    h.clock.current = at("2026-11-25T09:00")
    assert len(await h.campaigns.claim("node-a")) == 1


async def test_no_call_before_the_deadline_means_self_evaluation_at_once(hotline: Hotline) -> None:
    ready = at("2026-11-24T20:30")
    state = await hotline.campaigns.start(
        {
            "ticket_id": "t-late",
            "number": "20261124009999",
            "cycle": 1,
            "channel": "phone",
            "ready": ready.isoformat(),
            "deadline": at("2026-11-25T08:30").isoformat(),  # before the window opens
        }
    )
    assert state == "evaluating"
    async with hotline.engine.connect() as conn:
        kinds = (await conn.execute(sa.select(jobs.c.kind).where(jobs.c.ref == "t-late"))).all()
    assert [k for (k,) in kinds] == [EVALUATION_MESSAGE]


async def test_a_written_channel_gets_the_code_and_it_expires_with_the_deadline(
    hotline: Hotline,
) -> None:
    t = await hotline.to_callback(channel="website")
    row = await hotline.campaign_row(t)
    assert (row.mode, row.state, row.attempts) == ("written", "evaluating", 0)
    code = hotline.code()
    assert (await hotline.campaigns.lookup(code)).status == "ok"
    hotline.clock.current = row.deadline.replace(tzinfo=dt.UTC)
    assert (await hotline.campaigns.lookup(code)).status == "expired"
    assert (await hotline.campaigns.redeem(code, "satisfied")).status == "expired"
    assert await hotline.campaigns.expire() == 1  # the default: no objection (README)
    await hotline.drain()
    closed = await hotline.ticket(t)
    assert closed.state.value == "closed"
    assert closed.callbacks[-1].result.value == "no_objection"


async def test_a_utility_emergency_is_never_sent_a_code(hotline: Hotline) -> None:
    t = await hotline.to_callback()
    async with hotline.engine.begin() as conn:  # as a three-way call would have made it (H-6)
        await conn.execute(callbacks.update().values(utility=True))
    for _ in range(3):
        [p] = await hotline.campaigns.claim("node-a")
        await hotline.campaigns.finish(p, "no_answer")
        hotline.clock.current += dt.timedelta(hours=1)
    await hotline.drain()
    assert hotline.sms.sent == []
    tasks = await hotline.rows(office_tasks, office_tasks.c.ticket_id == t.id)
    assert [r.kind for r in tasks] == ["callback_unreached"]  # B-3: a person calls


async def test_a_lease_that_runs_out_is_one_failed_attempt_never_the_same_again(
    hotline: Hotline,
) -> None:
    t = await hotline.to_callback()
    [p] = await hotline.campaigns.claim("node-a")  # node-a dies on the call
    hotline.clock.current += hotline.campaigns.lease + MINUTE
    restarted = Campaigns(hotline.engine, hotline.campaign, hotline.clock, cap=10)
    assert await restarted.reap() == 1
    assert await restarted.finish(p, "answered", answer="satisfied", node="node-a") == ""  # late
    row = await hotline.campaign_row(t)
    assert [o[1] for o in json.loads(row.outcomes)] == ["failed"]
    hotline.clock.current = row.due_at.replace(tzinfo=dt.UTC)
    [again] = await restarted.claim("node-b")
    assert again.n == 2 and again.channel_id != p.channel_id


async def test_the_cap_holds_under_a_burst_of_200_due_callbacks(pg_engine: AsyncEngine) -> None:
    h = Hotline(pg_engine, "2026-11-24T10:00")
    now = h.clock.now()
    for i in range(200):
        await h.campaigns.start(
            {
                "ticket_id": f"t-{i}",
                "number": f"2026112400{i:04d}",
                "cycle": 1,
                "channel": "phone",
                "ready": now.isoformat(),
                "deadline": (now + dt.timedelta(days=2)).isoformat(),
            }
        )
    nodes = [Campaigns(pg_engine, h.campaign, h.clock, cap=10) for _ in range(4)]
    taken = await asyncio.gather(*(c.claim(f"node-{i}") for i, c in enumerate(nodes)))
    claimed = [p for batch in taken for p in batch]
    assert len(claimed) == 10 and len({p.id for p in claimed}) == 10
    assert await nodes[0].in_progress() == 10
    for p in claimed[:3]:
        await nodes[0].finish(p, "busy")
    more = await asyncio.gather(*(c.claim(f"node-{i}") for i, c in enumerate(nodes)))
    assert sum(len(b) for b in more) == 3  # room for three, no more
    assert await nodes[0].in_progress() == 10


async def test_figures_count_reach_satisfaction_and_attempts(hotline: Hotline) -> None:
    first = await hotline.to_callback()
    second = await hotline.to_callback()
    third = await hotline.to_callback(channel="website")
    a, b = sorted(await hotline.campaigns.claim("node-a"), key=lambda p: p.number)
    await hotline.campaigns.finish(a, "answered", answer="satisfied")
    await hotline.campaigns.finish(b, "busy")
    hotline.clock.current += dt.timedelta(minutes=10)
    [b2] = await hotline.campaigns.claim("node-a")
    await hotline.campaigns.finish(b2, "answered", answer="unsatisfied")
    await hotline.campaigns.redeem(hotline.code(), "basically_satisfied")
    shown = figures(await hotline.campaigns.rows(), "Asia/Shanghai")
    assert (await hotline.campaign_row(third)).method == "self_evaluation"  # the written one
    assert (await hotline.campaign_row(first)).attempts == 1
    assert (await hotline.campaign_row(second)).attempts == 2
    whole = shown["all"]
    assert (whole["ended"], whole["phone_ended"], whole["reached"]) == (3, 2, 2)
    assert whole["reach_rate"] == 1.0
    assert whole["satisfaction_rate"] == round(2 / 3, 4)  # satisfied + basically, of 3
    assert whole["attempts_per_survey"] == 1.5  # 1 + 2 calls for two completed surveys
    assert shown["units"]["water"]["evaluated"] == 3
    assert list(shown["months"]) == ["2026-11"]


async def test_a_utility_emergency_called_back_by_the_survey_closes_its_phone_task(
    hotline: Hotline,
) -> None:
    t = await hotline.to_callback(utility="water")
    row = await hotline.campaign_row(t)
    assert row.utility and row.mode == "phone"  # B-3: by telephone
    [task] = await hotline.rows(office_tasks, office_tasks.c.ticket_id == t.id)
    assert (task.kind, task.done_at) == ("phone_callback", None)
    [p] = await hotline.campaigns.claim("node-a")
    await hotline.campaigns.finish(p, "answered", answer="satisfied")
    await hotline.drain()
    assert (await hotline.ticket(t)).state.value == "closed"
    [task] = await hotline.rows(office_tasks, office_tasks.c.ticket_id == t.id)
    assert task.done_at is not None and task.done_by == "satisfaction-survey"


async def test_a_citizen_with_no_number_is_the_offices_never_no_objection(
    hotline: Hotline,
) -> None:
    t = await hotline.to_callback(citizen_phone="")  # a withheld caller's voice message, say
    row = await hotline.campaign_row(t)
    assert (row.state, row.result, row.attempts) == ("done", "unreached", 0)  # no call tried
    assert hotline.sms.sent == []
    hotline.clock.current = row.deadline.replace(tzinfo=dt.UTC)
    assert await hotline.campaigns.expire() == 0  # not closed for the silence of nobody asked
    tasks = await hotline.rows(office_tasks, office_tasks.c.ticket_id == t.id)
    assert [r.kind for r in tasks] == ["callback_unreached"]
    assert (await hotline.ticket(t)).state.value == "callback"


async def test_a_backlog_is_never_called_at_night(engine: AsyncEngine) -> None:
    h = Hotline(engine, "2026-11-24T19:00")
    await h.staff()
    t = await h.to_callback()  # due at 19:00; say the cap stays full until the window closes
    h.clock.current = at("2026-11-25T02:00")
    assert await h.campaigns.claim("node-a") == []  # never at night
    h.clock.current = at("2026-11-25T09:00")
    [p] = await h.campaigns.claim("node-a")
    assert p.ticket_id == t.id


async def test_a_callback_the_office_recorded_itself_is_not_called(hotline: Hotline) -> None:
    from hotline.callbacks.dialer import Dialer, SurveyCalls

    t = await hotline.to_callback()
    await hotline.act("agent", t, "callback", result="satisfied")  # the office called already
    dialer = Dialer(
        hotline.campaigns,
        SurveyCalls(None, ""),
        hotline.service.callback_contact,
        hotline.clock,
        "node-a",
    )
    [p] = await hotline.campaigns.claim("node-a")
    await dialer.place(p)
    row = await hotline.campaign_row(t)
    assert (row.state, row.result, row.call_until) == ("done", "moved_on", None)
    assert json.loads(row.outcomes) == []  # no call was placed


async def test_a_late_outcome_of_a_reaped_attempt_is_not_the_next_ones(hotline: Hotline) -> None:
    t = await hotline.to_callback()
    [first] = await hotline.campaigns.claim("node-a")
    hotline.clock.current += hotline.campaigns.lease + MINUTE
    assert await hotline.campaigns.reap() == 1
    hotline.clock.current = (await hotline.campaign_row(t)).due_at.replace(tzinfo=dt.UTC)
    [second] = await hotline.campaigns.claim("node-a")  # the same node, the next attempt
    assert (
        await hotline.campaigns.finish(first, "answered", answer="satisfied", node="node-a") == ""
    )
    row = await hotline.campaign_row(t)
    assert row.call_until is not None and row.result == ""  # the second call is still on
    assert await hotline.campaigns.finish(second, "busy", node="node-a") == "calling"


async def test_figures_count_a_ticket_of_two_units_once_in_the_totals() -> None:
    from types import SimpleNamespace

    ended = at("2026-11-24T10:00")
    rows = [
        SimpleNamespace(
            state="done",
            done_at=ended,
            units=units,
            mode="phone",
            method="phone",
            result=result,
            attempts=1,
        )
        for units, result in (("water,power", "satisfied"), ("water", "unsatisfied"))
    ]
    shown = figures(rows, "Asia/Shanghai")
    assert shown["all"]["ended"] == 2 and shown["all"]["satisfaction_rate"] == 0.5
    assert shown["units"]["water"]["evaluated"] == 2
    assert shown["units"]["power"]["satisfaction_rate"] == 1.0


async def test_a_code_that_would_come_too_late_is_the_offices(hotline: Hotline) -> None:
    state = await hotline.campaigns.start(
        {
            "ticket_id": "t-late2",
            "number": "20261124000301",
            "cycle": 1,
            "channel": "website",
            "ready": hotline.clock.now().isoformat(),
            "deadline": (hotline.clock.now() + dt.timedelta(hours=2)).isoformat(),
        }
    )
    assert state == "done"  # under the code's 4 hours: not "no objection" by default later
    async with hotline.engine.connect() as conn:
        kinds = (await conn.execute(sa.select(jobs.c.kind).where(jobs.c.ref == "t-late2"))).all()
    assert [k for (k,) in kinds] == [DECIDE]


async def test_the_code_is_never_stored_in_clear_and_a_log_gateway_sends_none(
    engine: AsyncEngine,
) -> None:
    h = Hotline(engine, "2026-11-24T10:00")
    await h.staff()
    t = await h.to_callback(channel="website")
    code = h.code()
    async with engine.connect() as conn:
        payloads = (await conn.execute(sa.select(jobs.c.payload))).all()
        stored = (await conn.execute(sa.select(callbacks.c.code_hash))).scalar_one()
    assert all(code not in p for (p,) in payloads)  # the job that sent it kept no code (Y-1)
    assert stored != code and len(stored) == 64
    # the same with the SMS port only logging (watch.sms = "log"): no citizen is reached
    quiet = CallbackJobs(
        h.campaigns, h.service, h.sms, evaluate_url=URL, timezone="Asia/Shanghai", delivers=False
    )
    h.jobs.handlers[EVALUATION_MESSAGE] = quiet.message
    other = await h.to_callback(channel="website")
    assert len(h.sms.sent) == 1  # only the first ticket's
    row = await h.campaign_row(other)
    assert (row.state, row.result) == ("done", "unreached")
    tasks = await h.rows(office_tasks, office_tasks.c.ticket_id == other.id)
    assert [r.kind for r in tasks] == ["callback_unreached"]
    assert (await h.campaigns.lookup(code)).status == "ok"  # the first code still works
    assert (await h.campaign_row(t)).state == "evaluating"


async def test_an_answer_whose_recording_cannot_be_taken_is_decided_without_it(
    hotline: Hotline,
) -> None:
    from hotline.jobs import Job

    class Broken:
        async def keep(self, name: str) -> None:
            raise RuntimeError("the switch has no such recording")

        async def forget(self, name: str) -> None:
            raise AssertionError("nothing to forget")

    t = await hotline.to_callback()
    jobs_ = CallbackJobs(
        hotline.campaigns,
        hotline.service,
        hotline.sms,
        evaluate_url=URL,
        timezone="Asia/Shanghai",
        recordings=Broken(),  # type: ignore[arg-type]
    )
    payload = {"ticket_id": t.id, "cycle": 1, "result": "unsatisfied", "method": "phone"}
    payload |= {"reason": "", "recording": "survey-x-1"}
    with pytest.raises(RuntimeError):  # tried again first
        await jobs_.decide(Job(1, DECIDE, "k", payload, 1, 12, hotline.clock.now()))
    assert (await hotline.ticket(t)).state.value == "callback"
    await jobs_.decide(Job(1, DECIDE, "k", payload, 3, 12, hotline.clock.now()))
    back = await hotline.ticket(t)
    assert back.state.value == "assigned" and "survey-x-1" not in back.recordings
