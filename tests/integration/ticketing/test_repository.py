"""Tickets in SQL on SQLite and on the real PostgreSQL: round trip, version check, intake."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

import hotline.callbacks.store
import hotline.jobs
import hotline.queue.log
import hotline.queue.presence  # noqa: F401 (agent_sessions)
from hotline.db import metadata
from hotline.errors import DuplicateIntake, NotFound, StaleTicket
from hotline.ticketing.model import Channel, Citizen, TicketType
from hotline.ticketing.repository import UnitOfWork
from hotline.ticketing.tables import ticket_events, tickets
from hotline.ticketing.ticket import Ticket
from tests.unit.ticketing.conftest import AGENT, DISPATCHER, WATER_HANDLER, World


async def register(engine: AsyncEngine, world: World, **kw: object) -> Ticket:
    async with UnitOfWork(engine) as uow:
        number = await uow.tickets.next_number(world.now.date())
        fields: dict[str, object] = dict(
            id=f"id-{number}",
            number=number,
            type=TicketType.HELP,
            channel=Channel.PHONE,
            citizen=Citizen("李四", "13900139000"),
            subject="",
            content="下水道堵塞",
        )
        fields.update(kw)
        ticket = Ticket.register(world.ctx(AGENT), **fields)  # type: ignore[arg-type]
        await uow.tickets.add(ticket)
        await uow.commit()
    return ticket


async def test_migrations_match_the_tables_in_code(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), metadata)
        )
    assert diff == []


async def test_a_ticket_round_trips_with_its_events(engine: AsyncEngine) -> None:
    world = World()
    ticket = await register(engine, world)
    async with UnitOfWork(engine) as uow:
        loaded = await uow.tickets.get(ticket.id)
        loaded.assign(world.ctx(DISPATCHER), ["water"])
        await uow.tickets.save(loaded)
        await uow.commit()
    async with UnitOfWork(engine) as uow:
        again = await uow.tickets.get_by_number(ticket.number)
        events = await uow.tickets.events(ticket.id)
    assert again.version == 1 and again.state.value == "assigned"
    assert again.assignments[0].handle.due == loaded.assignments[0].handle.due
    assert again.citizen == Citizen("李四", "13900139000")
    assert [(e.seq, e.action, e.rule) for e in events] == [
        (1, "register", "I-1"),
        (2, "assign", "D-1"),
    ]
    assert events[0].at.tzinfo is not None


async def test_numbers_run_per_day(engine: AsyncEngine) -> None:
    world = World()
    a = await register(engine, world)
    b = await register(engine, world)
    assert a.number.startswith("20261116-") and int(b.number[-4:]) == int(a.number[-4:]) + 1


async def test_a_change_without_commit_leaves_nothing(engine: AsyncEngine) -> None:
    world = World()
    ticket = await register(engine, world)
    async with UnitOfWork(engine) as uow:
        loaded = await uow.tickets.get(ticket.id)
        loaded.assign(world.ctx(DISPATCHER), ["water"])
        await uow.tickets.save(loaded)
        # no commit: an exception or a forgotten commit rolls back ticket and events together
    async with UnitOfWork(engine) as uow:
        assert (await uow.tickets.get(ticket.id)).state.value == "registered"
        assert len(await uow.tickets.events(ticket.id)) == 1


async def test_a_stale_version_is_refused(engine: AsyncEngine) -> None:
    world = World()
    ticket = await register(engine, world)
    async with UnitOfWork(engine) as first:
        one = await first.tickets.get(ticket.id)
        one.assign(world.ctx(DISPATCHER), ["water"])
        await first.tickets.save(one)
        await first.commit()
    stale = ticket  # still at version 0
    stale.pending.clear()
    stale.assign(world.ctx(DISPATCHER), ["roads"])
    async with UnitOfWork(engine) as second:
        with pytest.raises(StaleTicket):
            await second.tickets.save(stale)
    async with UnitOfWork(engine) as uow:
        now = await uow.tickets.get(ticket.id)
    assert [a.unit_id for a in now.assignments] == ["water"]  # the later writer lost nothing


async def test_intake_is_idempotent_on_channel_and_upstream_id(engine: AsyncEngine) -> None:
    # rule I-2
    world = World()
    first = await register(engine, world, channel=Channel.PROVINCIAL_PLATFORM, upstream_id="JS-1")
    with pytest.raises(DuplicateIntake):
        await register(engine, world, channel=Channel.PROVINCIAL_PLATFORM, upstream_id="JS-1")
    async with UnitOfWork(engine) as uow:
        found = await uow.tickets.by_upstream(Channel.PROVINCIAL_PLATFORM, "JS-1")
        count = (
            await uow.conn.execute(sa.select(sa.func.count()).select_from(tickets))
        ).scalar_one()
    assert found is not None and found.id == first.id and count == 1
    # the same upstream id from another channel is another ticket
    await register(engine, world, channel=Channel.NATIONAL_PLATFORM, upstream_id="JS-1")


async def test_open_tickets_by_phone_and_by_unit(engine: AsyncEngine) -> None:
    world = World()
    mine = await register(engine, world, citizen=Citizen("王五", "13700137000"))
    await register(engine, world, citizen=Citizen("赵六", "13600136000"))
    async with UnitOfWork(engine) as uow:
        t = await uow.tickets.get(mine.id)
        t.assign(world.ctx(DISPATCHER), ["water"])
        await uow.tickets.save(t)
        await uow.commit()
    async with UnitOfWork(engine) as uow:
        by_phone = await uow.queries.caller_open_summaries("13700137000")
        water = await uow.queries.summaries(unit="water")
        roads = await uow.queries.summaries(unit="roads")
    assert [s.number for s in by_phone] == [mine.number]
    assert by_phone[0].lead_unit == "water" and by_phone[0].handle_due is not None
    assert [s.number for s in water] == [mine.number] and roads == []


async def test_unknown_tickets_are_not_found(engine: AsyncEngine) -> None:
    async with UnitOfWork(engine) as uow:
        with pytest.raises(NotFound):
            await uow.tickets.get("nope")


async def test_two_writers_on_postgres_the_version_check_stops_a_lost_update(
    pg_engine: AsyncEngine,
) -> None:
    """Two concurrent transactions load the same version; only one change survives."""
    world = World()
    ticket = await register(pg_engine, world)
    async with UnitOfWork(pg_engine) as uow:
        t = await uow.tickets.get(ticket.id)
        t.assign(world.ctx(DISPATCHER), ["water"])
        await uow.tickets.save(t)
        await uow.commit()
    both_loaded = asyncio.Barrier(2)

    async def writer(action: str) -> str:
        async with UnitOfWork(pg_engine) as uow:
            t = await uow.tickets.get(ticket.id)
            await both_loaded.wait()  # both hold version 1 now
            a = t.assignments[0]
            if action == "sign":
                t.sign(world.ctx(WATER_HANDLER), a.id)
            else:
                t.request_return(world.ctx(WATER_HANDLER), a.id, "不归我们管", "依据", "roads")
            try:
                await uow.tickets.save(t)
                await uow.commit()
            except StaleTicket:
                return f"{action}:stale"
            return f"{action}:saved"

    results = sorted(await asyncio.gather(writer("sign"), writer("return")))
    assert sorted(r.split(":")[1] for r in results) == ["saved", "stale"]
    async with UnitOfWork(pg_engine) as uow:
        final = await uow.tickets.get(ticket.id)
        events = await uow.tickets.events(ticket.id)
        rows = (
            await uow.conn.execute(
                sa.select(sa.func.count())
                .select_from(ticket_events)
                .where(ticket_events.c.ticket_id == ticket.id)
            )
        ).scalar_one()
    winner = next(r.split(":")[0] for r in results if r.endswith("saved"))
    assert final.version == 2
    assert events[-1].action == ("sign" if winner == "sign" else "request_return")
    assert rows == 3  # register, assign, and the winner's change only


async def test_every_ticket_event_goes_to_the_outbox_in_the_same_transaction(
    engine: AsyncEngine,
) -> None:
    from hotline.clock import FixedClock
    from hotline.jobs import Outbox, jobs
    from hotline.ticketing.repository import TICKET_CHANGED

    world = World()
    outbox = Outbox({TICKET_CHANGED: ["sla.watch"]}, FixedClock(world.now))
    ticket = await register(engine, world)  # without an outbox: no job
    async with UnitOfWork(engine, outbox) as uow:
        loaded = await uow.tickets.get(ticket.id)
        loaded.assign(world.ctx(DISPATCHER), ["water"])
        await uow.tickets.save(loaded)
        await uow.rollback()  # nothing of it, and no job
    async with UnitOfWork(engine, outbox) as uow:
        loaded = await uow.tickets.get(ticket.id)
        loaded.assign(world.ctx(DISPATCHER), ["water"])
        await uow.tickets.save(loaded)
        await uow.commit()
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(jobs.c.kind, jobs.c.key, jobs.c.payload))).all()
    assert [(r.kind, r.key) for r in rows] == [("sla.watch", f"{ticket.id}:2")]
    assert '"action": "assign"' in rows[0].payload and '"after": "assigned"' in rows[0].payload
