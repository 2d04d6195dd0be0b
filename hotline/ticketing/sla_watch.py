"""The SLA watch on the durable timers: kept in step with every ticket change, fired by the
job worker (rules D-1, D-3, H-1, B-1, E-2 … E-4, S-4 … S-6).

:class:`TimerSync` runs in the unit of work of every ticket change, in its transaction: it
compares the timers the ticket wants (:func:`hotline.ticketing.watch.plan`) with its timer jobs
still due (found by the jobs' ``ref``), drops those no longer wanted — the stage was done, the
deadline moved — and adds the new ones. A change and its timers commit together or not at all.

:class:`SlaWatch` is the handler of those jobs. It loads the ticket and plans again: a timer
the ticket no longer wants does nothing (the change that cancelled it may have come after the
worker claimed it). Otherwise a reminder or an alert writes its notifications; an overdue mark
records the ``overdue`` event on the ticket, the violation (S-5) with what S-6 raises, and tells
the office — one transaction, so a job run twice (a node died before marking it done) finds its
rows there and adds nothing: the timer's effect happens once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hotline.clock import Clock
from hotline.db import as_utc
from hotline.errors import NotFound, StaleTicket
from hotline.jobs import DUE, Job, enqueue, jobs, reschedule
from hotline.ticketing.calendar import WorkingCalendar
from hotline.ticketing.model import Actor, Role
from hotline.ticketing.notices import Notice, Notifier, SmsGateway
from hotline.ticketing.queries import OPEN_STATES
from hotline.ticketing.service import TicketService
from hotline.ticketing.tables import tickets, units, users
from hotline.ticketing.ticket import Ctx, Ticket
from hotline.ticketing.watch import (
    ALERT,
    DECIDED,
    EMERGENCY_STAGES,
    OVERDUE,
    REMIND,
    Leads,
    Timer,
    audiences,
    party,
    plan,
    text,
    timer_key,
)

log = logging.getLogger(__name__)

TIMER = "sla.timer"  # the job kind of every SLA timer
STALE_RETRIES = 8  # a timer whose ticket changed under it is read again, this often
WATCH_ACTOR = Actor("sla-watch", Role.SUPERVISOR)  # marks overdue on the office's behalf (S-4)


class TimerSync:
    def __init__(
        self,
        leads: Leads,
        calendar: WorkingCalendar,
        clock: Clock,
        multi_days: float | None = None,
    ) -> None:
        self.leads, self.calendar, self.clock = leads, calendar, clock
        self.multi_days = multi_days  # D-1 for several units with a lead (rules.assign_multi_days)
        self.on_commit = lambda: None  # the local worker's poke: a timer may be due at once

    def plan(self, ticket: Ticket) -> dict[str, Timer]:
        return {
            timer_key(ticket.id, t): t
            for t in plan(ticket, self.leads, self.calendar, self.multi_days)
        }

    async def sync(self, conn: AsyncConnection, ticket: Ticket) -> int:
        """Bring the ticket's due timer jobs in step with its plan; how many rows changed."""
        keys = self.plan(ticket)
        rows = await conn.execute(
            sa.select(jobs.c.key, jobs.c.due_at).where(
                jobs.c.ref == ticket.id, jobs.c.kind == TIMER, jobs.c.state == DUE
            )
        )
        due = {r.key: as_utc(r.due_at) for r in rows}
        stale = sorted(due.keys() - keys.keys())
        changed = 0
        if stale:
            result = await conn.execute(
                jobs.delete().where(
                    jobs.c.kind == TIMER, jobs.c.key.in_(stale), jobs.c.state == DUE
                )
            )
            changed += int(result.rowcount)
        now = self.clock.now()
        for key, timer in keys.items():
            if key in due:
                if due[key] != timer.at:  # the lead times changed ([watch]): it moves
                    changed += await reschedule(conn, TIMER, key, timer.at)
                continue
            if timer.what == REMIND and timer.at <= now:
                continue  # its time passed before it was wanted: the overdue mark says it
            payload = {"ticket_id": ticket.id, "what": timer.what, "stage": timer.stage}
            changed += await enqueue(conn, TIMER, key, payload, timer.at, now=now, ref=ticket.id)
        await self._late_assignment(conn, ticket)
        return changed

    async def _late_assignment(self, conn: AsyncConnection, ticket: Ticket) -> None:
        """Rule D-1: an assignment made after its deadline, before the watch marked it (the
        multi-unit deadline was still open), is the office's miss, recorded now."""
        d = ticket.assign_deadline
        if d.late and not d.overdue and d.due is not None:
            await Notifier().violation(
                conn,
                f"{ticket.id}/ticket/{d.stage}/late",
                ticket=(ticket.id, ticket.number),
                stage=d.stage,
                rule=d.rule,
                party="office",
                unit_id=None,
                handler_id=None,
                due=d.due,
                now=self.clock.now(),
                tz=self.calendar.tz,
            )


class SlaWatch:
    """Fires the SLA timers (the job handler of ``sla.timer``)."""

    def __init__(self, service: TicketService, notifier: Notifier) -> None:
        assert isinstance(service.watch, TimerSync), "the ticket service keeps no SLA timers"
        self.service, self.notifier = service, notifier
        self.sync: TimerSync = service.watch
        self.fired = 0

    async def fire(self, job: Job) -> None:
        """Run one timer; a ticket changed meanwhile (another timer of the same ticket, due at
        the same minute, or a user) is read again and the timer tried again."""
        for attempt in range(STALE_RETRIES):
            try:
                made = await self._fire(job)
            except StaleTicket:
                if attempt == STALE_RETRIES - 1:
                    raise
                await asyncio.sleep(random.uniform(0.0, 0.05 * (attempt + 1)))
                continue
            self.fired += made is not None
            await self.notifier.pushed(made or [])
            return

    async def _fire(self, job: Job) -> list[Notice] | None:
        """None: the timer is no longer wanted."""
        service = self.service
        made: list[Notice] = []
        async with service.uow() as uow:
            try:
                ticket = await uow.tickets.get(str(job.payload["ticket_id"]))
            except NotFound:
                return None
            timer = self.sync.plan(ticket).get(job.key)
            if timer is None:  # done in time, or the deadline moved after the claim
                log.debug("sla: %s is no longer wanted", job.key)
                return None
            now = service.clock.now()
            conn = uow.conn
            ref = (ticket.id, ticket.number)
            if timer.what == OVERDUE:
                if ticket.mark_overdue(Ctx(WATCH_ACTOR, now, service.sla), timer.part, timer.stage):
                    await uow.tickets.save(ticket)
                made += await self._violation(conn, ticket, timer, job.key, now)
            unit_name = await _unit_name(conn, ticket) if timer.stage == DECIDED else ""
            # the plan's alerts and escalations also go by SMS (E-2, E-3); reminders do not
            sms = timer.what == ALERT or (timer.what == OVERDUE and timer.stage in EMERGENCY_STAGES)
            made += await self.notifier.notify(
                conn,
                job.key,
                audiences(ticket, timer),
                timer.what,
                text(ticket, timer, self.sync.calendar.tz, unit_name),
                now,
                ticket=ref,
                sms=sms,
            )
            await uow.commit()
        return made

    async def _violation(
        self, conn: AsyncConnection, ticket: Ticket, timer: Timer, key: str, now: dt.datetime
    ) -> list[Notice]:
        who = party(ticket, timer)
        handler = who.handler
        if who.kind == "unit" and handler is None and who.unit is not None:
            handler = await self.notifier.sole_handler(conn, who.unit)
        return await self.notifier.violation(
            conn,
            key,
            ticket=(ticket.id, ticket.number),
            stage=who.stage,
            rule=timer.rule,
            party=who.kind,
            unit_id=who.unit,
            handler_id=handler,
            due=timer.due,
            now=now,
            tz=self.sync.calendar.tz,
        )


async def _unit_name(conn: AsyncConnection, ticket: Ticket) -> str:
    e = ticket.emergency
    if e is None or not e.unit:
        return ""
    row = (await conn.execute(sa.select(units.c.name).where(units.c.id == e.unit))).first()
    return str(row.name) if row is not None else e.unit


class SmsSender:
    """The handler of ``notify.sms``: one message to the user's phone through the gateway."""

    def __init__(self, engine: AsyncEngine, gateway: SmsGateway) -> None:
        self.engine, self.gateway = engine, gateway

    async def send(self, job: Job) -> None:
        user_id = str(job.payload["user_id"])
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(users.c.phone).where(users.c.id == user_id))
            ).first()
        phone = str(row.phone) if row is not None else ""
        if not phone:
            log.warning("sms: user %s has no phone on record; the notice is in the list", user_id)
            return
        await self.gateway.send(phone, str(job.payload["text"]))


async def resync(service: TicketService, batch: int = 500) -> int:
    """Every open ticket's timers brought in step (after an upgrade that added the watch, or
    a change of ``[watch]``): idempotent; how many tickets were looked at."""
    assert service.watch is not None
    done, after = 0, ""
    while True:
        async with service.engine.connect() as conn:
            ids = [
                str(r.id)
                for r in await conn.execute(
                    sa.select(tickets.c.id)
                    .where(tickets.c.state.in_(OPEN_STATES), tickets.c.id > after)
                    .order_by(tickets.c.id)
                    .limit(batch)
                )
            ]
        if not ids:
            return done
        async with service.uow() as uow:
            for ticket_id in ids:
                await service.watch.sync(uow.conn, await uow.tickets.get(ticket_id))
            await uow.commit()
        done += len(ids)
        after = ids[-1]
