"""Tickets in SQL, and the unit of work that commits a change with its events or not at all.

A ticket is stored as a JSON snapshot of the aggregate plus the columns queries need (state,
phone, lead unit, deadlines, assignments per unit); its events are rows of their own. Saving
checks the version the ticket was loaded at (optimistic locking): if another writer got there
first, :class:`StaleTicket` and nothing is written. The unit of work rolls back unless
``commit()`` is called (after cosmicpython).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hotline.db import as_utc, database_down
from hotline.errors import DuplicateIntake, NotFound, OutcomeUnknown, StaleTicket
from hotline.jobs import Event, Outbox
from hotline.ticketing import codec
from hotline.ticketing.model import Channel, TicketEvent
from hotline.ticketing.queries import TicketQueries
from hotline.ticketing.tables import (
    assignments,
    call_identity_access,
    identity_access,
    office_tasks,
    ticket_events,
    ticket_numbers,
    tickets,
)
from hotline.ticketing.ticket import Ticket

TICKET_CHANGED = "TicketChanged"  # every ticket event, for handlers (SLA watch, notices …)

# Statements built once, run with parameters (no per-call statement building and cache keys).
_ROW_COLUMNS = (
    "state",
    "type",
    "channel",
    "upstream_id",
    "citizen_phone",
    "registered_at",
    "closed_at",
    "published",
    "lead_unit",
    "handle_due",
    "repeat_of",
    "snapshot",
)
_INSERT_TICKET = tickets.insert()
_UPDATE_TICKET = (
    tickets.update()
    .where(tickets.c.id == sa.bindparam("p_id"), tickets.c.version == sa.bindparam("p_version"))
    .values(
        {
            "version": sa.bindparam("p_new_version"),
            **{c: sa.bindparam(f"p_{c}") for c in _ROW_COLUMNS},
        }
    )
)
_DELETE_ASSIGNMENTS = assignments.delete().where(
    assignments.c.ticket_id == sa.bindparam("p_ticket")
)
_SNAPSHOT = sa.select(tickets.c.snapshot, tickets.c.version)
_BY_ID = _SNAPSHOT.where(tickets.c.id == sa.bindparam("p_ref"))
_BY_NUMBER = _SNAPSHOT.where(tickets.c.number == sa.bindparam("p_ref"))
_BY_UPSTREAM = _SNAPSHOT.where(
    tickets.c.channel == sa.bindparam("p_channel"),
    tickets.c.upstream_id == sa.bindparam("p_upstream"),
)


def _row_values(ticket: Ticket) -> dict[str, Any]:
    live = ticket.live_assignments()
    lead = next((a for a in live if a.lead), live[0] if live else None)
    return {
        "state": ticket.state.value,
        "type": ticket.type.value,
        "channel": ticket.channel.value,
        "upstream_id": ticket.upstream_id,
        "citizen_phone": ticket.citizen.phone,
        "registered_at": ticket.registered_at,
        "closed_at": ticket.closed_at,
        "published": ticket.published,
        "lead_unit": lead.unit_id if lead else None,
        "handle_due": lead.handle.due if lead else None,
        "repeat_of": ticket.repeat_of,
        "call_id": ticket.call_id,
        "snapshot": codec.to_json(ticket),
    }


class TicketRepository:
    def __init__(self, conn: AsyncConnection, events: list[Event] | None = None) -> None:
        self.conn = conn
        self.domain_events = events if events is not None else []  # for the outbox
        self.touched: dict[str, Ticket] = {}  # added or saved: their timers follow (SLA watch)

    async def next_number(self, day: dt.date) -> str:
        """Human-readable number: date and the day's sequence, ``20261127-0042``."""
        key = day.strftime("%Y%m%d")
        upsert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        insert = upsert(ticket_numbers)
        stmt = (
            insert.values(day=key, last=1)
            .on_conflict_do_update(index_elements=["day"], set_={"last": ticket_numbers.c.last + 1})
            .returning(ticket_numbers.c.last)
        )
        last = (await self.conn.execute(stmt)).scalar_one()
        return f"{key}-{last:04d}"

    async def add(self, ticket: Ticket) -> None:
        try:
            await self.conn.execute(
                _INSERT_TICKET,
                {
                    "id": ticket.id,
                    "number": ticket.number,
                    "version": ticket.version,
                    **_row_values(ticket),
                },
            )
        except IntegrityError as exc:
            if ticket.upstream_id:  # rule I-2: most likely the same upstream id again
                raise DuplicateIntake(ticket.upstream_id) from exc
            raise
        await self._write_children(ticket)

    async def save(self, ticket: Ticket) -> None:
        values = {f"p_{k}": v for k, v in _row_values(ticket).items()}
        result = await self.conn.execute(
            _UPDATE_TICKET,
            {
                "p_id": ticket.id,
                "p_version": ticket.version,
                "p_new_version": ticket.version + 1,
                **values,
            },
        )
        if result.rowcount != 1:
            raise StaleTicket(f"ticket {ticket.number} changed since version {ticket.version}")
        ticket.version += 1
        await self._write_children(ticket)

    async def _write_children(self, ticket: Ticket) -> None:
        self.touched[ticket.id] = ticket
        await self.conn.execute(_DELETE_ASSIGNMENTS, {"p_ticket": ticket.id})
        if ticket.assignments:
            await self.conn.execute(
                assignments.insert(),
                [
                    {
                        "id": a.id,
                        "ticket_id": ticket.id,
                        "unit_id": a.unit_id,
                        "state": a.state.value,
                        "live": a.live,
                        "sign_due": a.sign.due,
                        "handle_due": a.handle.due,
                    }
                    for a in ticket.assignments
                ],
            )
        if ticket.pending:
            await self.conn.execute(
                ticket_events.insert(),
                [
                    {
                        "ticket_id": ticket.id,
                        "seq": e.seq,
                        "at": e.at,
                        "actor": e.actor,
                        "role": e.role,
                        "action": e.action,
                        "rule": e.rule,
                        "before": e.before,
                        "after": e.after,
                        "data": codec.to_json(dict(e.data)),
                    }
                    for e in ticket.pending
                ],
            )
            self.domain_events.extend(
                Event(
                    TICKET_CHANGED,
                    f"{ticket.id}:{e.seq}",
                    {
                        "ticket_id": ticket.id,
                        "number": ticket.number,
                        "action": e.action,
                        "before": e.before,
                        "after": e.after,
                        "at": e.at.isoformat(),
                    },
                )
                for e in ticket.pending
            )
            ticket.pending.clear()

    async def get(self, ticket_id: str) -> Ticket:
        return await self._one(_BY_ID, {"p_ref": ticket_id}, ticket_id)

    async def get_by_number(self, number: str) -> Ticket:
        return await self._one(_BY_NUMBER, {"p_ref": number}, number)

    async def _one(self, query: sa.Select[Any], params: dict[str, Any], name: str) -> Ticket:
        row = (await self.conn.execute(query, params)).first()
        if row is None:
            raise NotFound(name)
        ticket = codec.load(Ticket, row.snapshot)
        ticket.version = row.version
        return ticket

    async def by_upstream(self, channel: Channel, upstream_id: str) -> Ticket | None:
        try:
            return await self._one(
                _BY_UPSTREAM, {"p_channel": channel.value, "p_upstream": upstream_id}, upstream_id
            )
        except NotFound:
            return None

    async def events(self, ticket_id: str) -> list[TicketEvent]:
        rows = (
            await self.conn.execute(
                sa.select(ticket_events)
                .where(ticket_events.c.ticket_id == ticket_id)
                .order_by(ticket_events.c.seq)
            )
        ).mappings()
        return [
            TicketEvent(
                seq=r["seq"],
                at=as_utc(r["at"]),
                actor=r["actor"],
                role=r["role"],
                action=r["action"],
                rule=r["rule"],
                before=r["before"],
                after=r["after"],
                data=r["data"],
            )
            for r in rows
        ]

    # -- what the office records beside tickets ------------------------------------------------
    async def add_task(self, kind: str, ticket_id: str, at: dt.datetime, note: str = "") -> None:
        await self.conn.execute(
            office_tasks.insert().values(kind=kind, ticket_id=ticket_id, created_at=at, note=note)
        )

    async def complete_tasks_of(
        self, ticket_id: str, kind: str, by: str, at: dt.datetime, note: str
    ) -> int:
        """Mark a ticket's open tasks of one kind done (their work was done another way)."""
        result = await self.conn.execute(
            office_tasks.update()
            .where(
                office_tasks.c.ticket_id == ticket_id,
                office_tasks.c.kind == kind,
                office_tasks.c.done_at.is_(None),
            )
            .values(done_at=at, done_by=by, note=note[:500])
        )
        return int(result.rowcount)

    async def complete_task(self, task_id: int, by: str, at: dt.datetime, note: str) -> bool:
        """Mark an open task done; False when there is no such open task."""
        result = await self.conn.execute(
            office_tasks.update()
            .where(office_tasks.c.id == task_id, office_tasks.c.done_at.is_(None))
            .values(done_at=at, done_by=by, note=note[:500])
        )
        return bool(result.rowcount == 1)

    async def log_identity_access(
        self, ticket_id: str, user_id: str, role: str, at: dt.datetime, why: str
    ) -> None:
        """Rule Y-1: every look at a citizen's identity is on record."""
        await self.conn.execute(
            identity_access.insert().values(
                ticket_id=ticket_id, user_id=user_id, role=role, at=at, why=why[:500]
            )
        )

    async def log_call_identity_access(
        self, call_id: str, user_id: str, role: str, at: dt.datetime, why: str
    ) -> None:
        """Rule Y-1: a caller's number shown to an agent (a screen pop), on record."""
        await self.conn.execute(
            call_identity_access.insert().values(
                call_id=call_id, user_id=user_id, role=role, at=at, why=why[:500]
            )
        )


class Timers(Protocol):
    """Keeps a ticket's durable timers in step with it (the SLA watch's TimerSync)."""

    on_commit: Callable[[], None]

    async def sync(self, conn: AsyncConnection, ticket: Ticket) -> int: ...


class UnitOfWork:
    """``async with UnitOfWork(engine) as uow: …; await uow.commit()`` — else rolled back.

    With :class:`Timers`, every ticket added or saved has its SLA timers brought in step in
    the same transaction (a deadline that moved moves its timers; one met drops them).

    With an :class:`~hotline.jobs.Outbox`, the domain events of the change (every ticket event
    as ``TicketChanged``, and what the service publishes) become jobs for their handlers in the
    same transaction (after cosmicpython's message bus, made durable). A commit whose answer is
    lost raises :class:`OutcomeUnknown`: the change may or may not be stored.
    """

    def __init__(
        self, engine: AsyncEngine, outbox: Outbox | None = None, timers: Timers | None = None
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.timers = timers
        self._conn: AsyncConnection | None = None
        self._tx: Any = None
        self.events: list[Event] = []

    async def __aenter__(self) -> UnitOfWork:
        self._conn = await self.engine.connect()
        self._tx = await self._conn.begin()
        self.tickets = TicketRepository(self._conn, self.events)
        self.queries = TicketQueries(self._conn)
        return self

    def publish(self, event: Event) -> None:
        """An event to deliver after this unit of work commits (nothing if it does not)."""
        self.events.append(event)

    @property
    def conn(self) -> AsyncConnection:
        assert self._conn is not None
        return self._conn

    async def commit(self) -> None:
        written = timed = 0
        if self.timers is not None:
            for ticket in self.tickets.touched.values():
                timed += await self.timers.sync(self.conn, ticket)
        if self.outbox is not None and self.events:
            written = await self.outbox.publish(self.conn, self.events)
        try:
            await self._tx.commit()
        except Exception as exc:
            if database_down(exc):
                raise OutcomeUnknown(
                    "the commit was sent but not confirmed: the change may or may not be stored"
                ) from exc
            raise
        self.events.clear()
        self.tickets.touched.clear()
        if written and self.outbox is not None:
            self.outbox.on_commit()
        if timed and self.timers is not None:
            self.timers.on_commit()

    async def rollback(self) -> None:
        if self._tx.is_active:
            await self._tx.rollback()

    async def __aexit__(self, *exc: object) -> None:
        assert self._conn is not None
        if self._tx.is_active:
            await self._tx.rollback()
        await self._conn.close()


def city_day(now: dt.datetime, timezone: str) -> dt.date:
    return now.astimezone(zoneinfo.ZoneInfo(timezone)).date()
