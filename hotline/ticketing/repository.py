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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hotline.db import as_utc
from hotline.ticketing import codec
from hotline.ticketing.model import Channel, TicketEvent, TicketState
from hotline.ticketing.tables import assignments, ticket_events, ticket_numbers, tickets
from hotline.ticketing.ticket import Ticket

OPEN_STATES = tuple(
    s.value for s in TicketState if s not in (TicketState.CLOSED, TicketState.REJECTED)
)


class NotFound(Exception):
    pass


class StaleTicket(Exception):
    """Somebody else changed the ticket since it was loaded."""


class DuplicateIntake(Exception):
    """The (channel, upstream id) pair is already a ticket (rule I-2)."""


@dataclass(frozen=True, slots=True)
class Summary:
    id: str
    number: str
    state: str
    type: str
    registered_at: dt.datetime
    lead_unit: str | None
    handle_due: dt.datetime | None


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
        "snapshot": codec.to_json(ticket),
    }


class TicketRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

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

    async def load_many(
        self, *, where: Sequence[sa.ColumnElement[bool]] = (), limit: int = 50, offset: int = 0
    ) -> list[Ticket]:
        query = (
            sa.select(tickets.c.snapshot, tickets.c.version)
            .where(*where)
            .order_by(tickets.c.registered_at.desc(), tickets.c.id)
            .limit(limit)
            .offset(offset)
        )
        out = []
        for row in (await self.conn.execute(query)).all():
            ticket = codec.load(Ticket, row.snapshot)
            ticket.version = row.version
            out.append(ticket)
        return out

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

    async def summaries(
        self,
        *,
        where: Sequence[sa.ColumnElement[bool]] = (),
        unit: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Summary]:
        cols = (
            tickets.c.id,
            tickets.c.number,
            tickets.c.state,
            tickets.c.type,
            tickets.c.registered_at,
            tickets.c.lead_unit,
            tickets.c.handle_due,
        )
        query = sa.select(*cols).where(*where)
        if unit is not None:  # a unit sees the tickets it holds now (rule Y-1)
            held = sa.select(assignments.c.ticket_id).where(
                assignments.c.unit_id == unit, assignments.c.live.is_(True)
            )
            query = query.where(tickets.c.id.in_(held), tickets.c.state != "internal")
        query = query.order_by(tickets.c.registered_at.desc(), tickets.c.id)
        rows = (await self.conn.execute(query.limit(limit).offset(offset))).all()
        return [
            Summary(
                r.id,
                r.number,
                r.state,
                r.type,
                as_utc(r.registered_at),
                r.lead_unit,
                as_utc(r.handle_due),
            )
            for r in rows
        ]

    async def open_by_phone(self, phone: str, limit: int = 20) -> list[Summary]:
        """A caller's open tickets (screen pop, IVR progress)."""
        return await self.summaries(
            where=[tickets.c.citizen_phone == phone, tickets.c.state.in_(OPEN_STATES)],
            limit=limit,
        )


class UnitOfWork:
    """``async with UnitOfWork(engine) as uow: …; await uow.commit()`` — else rolled back."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._conn: AsyncConnection | None = None
        self._tx: Any = None

    async def __aenter__(self) -> UnitOfWork:
        self._conn = await self.engine.connect()
        self._tx = await self._conn.begin()
        self.tickets = TicketRepository(self._conn)
        return self

    @property
    def conn(self) -> AsyncConnection:
        assert self._conn is not None
        return self._conn

    async def commit(self) -> None:
        await self._tx.commit()

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
