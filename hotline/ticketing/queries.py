"""The read side: every query that several places need, beside the repository (after
cosmicpython's ``views.py``).

The repository loads and saves one ticket for a change; everything that *lists* or *looks up*
— a caller's open tickets (IVR progress, screen pops), a ticket by number, the search of the
office and of a unit, the public list, Open311, the office's tasks, the tickets linked to a
repeat request, the staffing of units — lives here. No other module names a table column.
Queries run on the connection of a unit of work (``uow.queries``), read-only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hotline.db import as_utc
from hotline.ticketing import codec
from hotline.ticketing.model import TicketState
from hotline.ticketing.tables import assignments, office_tasks, tickets, units, users
from hotline.ticketing.ticket import Ticket

OPEN_STATES = tuple(
    s.value for s in TicketState if s not in (TicketState.CLOSED, TicketState.REJECTED)
)
MAX_ROWS = 500


@dataclass(frozen=True, slots=True)
class Summary:
    id: str
    number: str
    state: str
    type: str
    registered_at: dt.datetime
    lead_unit: str | None
    handle_due: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    kind: str
    ticket: str  # the ticket's number
    created_at: dt.datetime
    done_at: dt.datetime | None
    done_by: str | None
    note: str


_SUMMARY = (
    tickets.c.id,
    tickets.c.number,
    tickets.c.state,
    tickets.c.type,
    tickets.c.registered_at,
    tickets.c.lead_unit,
    tickets.c.handle_due,
)


class TicketQueries:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _tickets(
        self, where: Sequence[sa.ColumnElement[bool]], limit: int = 50, offset: int = 0
    ) -> list[Ticket]:
        query = (
            sa.select(tickets.c.snapshot, tickets.c.version)
            .where(*where)
            .order_by(tickets.c.registered_at.desc(), tickets.c.id)
            .limit(min(limit, MAX_ROWS))
            .offset(offset)
        )
        out = []
        for row in (await self.conn.execute(query)).all():
            ticket = codec.load(Ticket, row.snapshot)
            ticket.version = row.version
            out.append(ticket)
        return out

    # -- the caller ----------------------------------------------------------------------------
    async def caller_open_tickets(
        self, phone: str, since: dt.datetime | None = None, limit: int = 20
    ) -> list[Ticket]:
        """A caller's open tickets, newest first (IVR progress, repeat callers, screen pops)."""
        where = [tickets.c.citizen_phone == phone, tickets.c.state.in_(OPEN_STATES)]
        if since is not None:
            where.append(tickets.c.registered_at >= since)
        return await self._tickets(where, limit)

    async def caller_open_summaries(self, phone: str, limit: int = 20) -> list[Summary]:
        where = [tickets.c.citizen_phone == phone, tickets.c.state.in_(OPEN_STATES)]
        return await self.summaries(where=where, limit=limit)

    async def by_number(self, number: str) -> Ticket | None:
        found = await self._tickets([tickets.c.number == number], 1)
        return found[0] if found else None

    async def by_call(self, call_id: str) -> Ticket | None:
        """The ticket registered on a call (the newest, if the agent registered several)."""
        found = await self._tickets([tickets.c.call_id == call_id], 1)
        return found[0] if found else None

    # -- the office's and the units' lists -----------------------------------------------------
    async def search(
        self,
        *,
        state: str | None = None,
        phone: str | None = None,
        unit: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Summary]:
        where: list[sa.ColumnElement[bool]] = []
        if state:
            where.append(tickets.c.state == state)
        if phone:
            where.append(tickets.c.citizen_phone == phone)
        return await self.summaries(where=where, unit=unit, limit=limit, offset=offset)

    async def summaries(
        self,
        *,
        where: Sequence[sa.ColumnElement[bool]] = (),
        unit: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Summary]:
        query = sa.select(*_SUMMARY).where(*where)
        if unit is not None:  # a unit sees the tickets it holds now (rule Y-1)
            held = sa.select(assignments.c.ticket_id).where(
                assignments.c.unit_id == unit, assignments.c.live.is_(True)
            )
            query = query.where(tickets.c.id.in_(held), tickets.c.state != "internal")
        query = query.order_by(tickets.c.registered_at.desc(), tickets.c.id)
        rows = (await self.conn.execute(query.limit(min(limit, MAX_ROWS)).offset(offset))).all()
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

    async def linked(self, ids: Iterable[str]) -> list[Ticket]:
        """Tickets registered as repeats of any of ``ids`` (rule D-6)."""
        return await self._tickets([tickets.c.repeat_of.in_(list(ids))], MAX_ROWS)

    async def tasks(self, open_only: bool = True) -> list[Task]:
        query = (
            sa.select(office_tasks, tickets.c.number)
            .join(tickets, tickets.c.id == office_tasks.c.ticket_id)
            .order_by(office_tasks.c.created_at)
        )
        if open_only:
            query = query.where(office_tasks.c.done_at.is_(None))
        rows = (await self.conn.execute(query.limit(MAX_ROWS))).mappings().all()
        return [
            Task(
                r["id"],
                r["kind"],
                r["number"],
                as_utc(r["created_at"]),
                as_utc(r["done_at"]),
                r["done_by"],
                r["note"],
            )
            for r in rows
        ]

    # -- the public ----------------------------------------------------------------------------
    async def published(self, limit: int, offset: int) -> list[Ticket]:
        """Closed tickets the office decided to publish (P-1); the caller still checks each."""
        where = [tickets.c.published.is_(True), tickets.c.state == TicketState.CLOSED.value]
        return await self._tickets(where, limit, offset)

    async def open311(self, status: str | None, limit: int, offset: int) -> list[Ticket]:
        """Open and closed requests, never rejected or internal ones (the caller filters the
        rest: opted out, unpublished)."""
        where: list[sa.ColumnElement[bool]] = [
            tickets.c.state.notin_([TicketState.REJECTED.value, TicketState.INTERNAL.value])
        ]
        if status == "closed":
            where.append(tickets.c.state == TicketState.CLOSED.value)
        elif status == "open":
            where.append(tickets.c.state != TicketState.CLOSED.value)
        return await self._tickets(where, limit, offset)

    # -- units ---------------------------------------------------------------------------------
    async def unit_roles(self, unit_ids: Sequence[str]) -> dict[str, set[str]]:
        """For each linked unit among ``unit_ids``, the roles its users hold (rule D-7)."""
        rows = (
            await self.conn.execute(
                sa.select(units.c.id, users.c.role)
                .select_from(units.outerjoin(users, users.c.unit_id == units.c.id))
                .where(units.c.id.in_(list(unit_ids)))
            )
        ).all()
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r.id, set())
            if r.role:
                out[r.id].add(r.role)
        return out

    async def unit_names(self) -> dict[str, str]:
        rows = (await self.conn.execute(sa.select(units.c.id, units.c.name))).all()
        return {r.id: r.name for r in rows}
