"""Voice messages left at the IVR, on SQLite and PostgreSQL: the ticket, the office's call-back
task, and who may hear the recording (rule Y-1)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import FixedClock
from hotline.config.settings import RulesSettings
from hotline.errors import Forbidden, NotFound
from hotline.ticketing.model import Actor, Channel, Role, TicketType
from hotline.ticketing.service import TicketService
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.tables import identity_access
from hotline.ticketing.users import add_unit, add_user, authenticate
from tests.unit.ticketing.conftest import CALENDAR, at

PHONE = "13912345678"


async def setup(engine: AsyncEngine) -> tuple[TicketService, dict[str, Actor]]:
    service = TicketService(
        engine, SlaEngine(CALENDAR, RulesSettings()), FixedClock(at("2026-11-16T22:00")), "UTC"
    )
    await add_unit(engine, "water", "市水务局")
    who = {}
    for key, role, unit in [
        ("supervisor", Role.SUPERVISOR, None),
        ("agent", Role.AGENT, None),
        ("water_h", Role.UNIT_HANDLER, "water"),
        ("water_l", Role.UNIT_LEADER, "water"),
    ]:
        _, token = await add_user(engine, key, role, unit)
        user = await authenticate(engine, token)
        assert user is not None
        who[key] = user.actor
    return service, who


async def test_a_voice_message_is_a_phone_ticket_with_a_call_back_task(
    engine: AsyncEngine,
) -> None:
    service, who = await setup(engine)
    ticket = await service.register_voice_message(
        "1700000000.7", PHONE, "hotline-vm-1700000000-7", 12.0, TicketType.HELP
    )
    assert ticket.channel is Channel.PHONE and ticket.citizen.phone == PHONE
    assert list(ticket.recordings) == ["hotline-vm-1700000000-7"] and "回电" in ticket.content
    (task,) = await service.tasks(who["supervisor"])
    assert (task.kind, task.ticket, task.done_at, task.note) == (
        "voicemail_callback",
        ticket.number,
        None,
        "",
    )
    # the same call again (a retried registration): the same ticket, no second task
    again = await service.register_voice_message(
        "1700000000.7", PHONE, "hotline-vm-1700000000-7", 12.0, TicketType.HELP
    )
    assert again.id == ticket.id and len(await service.tasks(who["supervisor"])) == 1


async def test_a_withheld_number_is_said_plainly_in_the_ticket(engine: AsyncEngine) -> None:
    service, _ = await setup(engine)
    ticket = await service.register_voice_message(
        "1700000000.8", "", "hotline-vm-1700000000-8", 5.0, TicketType.COMPLAINT
    )
    assert ticket.citizen.phone == "" and "来电号码未显示" in ticket.content


async def test_a_withheld_number_is_said_in_the_call_back_task(engine: AsyncEngine) -> None:
    # README: "a withheld caller ID is kept as no number, and the task says so"
    service, who = await setup(engine)
    await service.register_voice_message(
        "1700000000.9", "", "hotline-vm-1700000000-9", 5.0, TicketType.HELP
    )
    (task,) = await service.tasks(who["supervisor"])
    assert "来电号码未显示" in task.note and "无法回电" in task.note


async def test_call_back_tasks_are_the_office_s_and_done_once(engine: AsyncEngine) -> None:
    service, who = await setup(engine)
    await service.register_voice_message("c.1", PHONE, "hotline-vm-c-1", 8.0, TicketType.HELP)
    with pytest.raises(Forbidden):
        await service.tasks(who["water_h"])
    (task,) = await service.tasks(who["agent"])
    with pytest.raises(Forbidden):
        await service.complete_task(who["water_l"], task.id, "")
    await service.complete_task(who["agent"], task.id, "回电已联系，转派水务局")
    assert await service.tasks(who["agent"]) == []
    (done,) = await service.tasks(who["agent"], open_only=False)
    assert done.done_by == who["agent"].user_id and done.note.startswith("回电")
    with pytest.raises(NotFound):  # twice: the task is no longer open
        await service.complete_task(who["agent"], task.id, "")


async def test_only_the_office_hears_a_recording_and_every_listen_is_on_record(
    engine: AsyncEngine,
) -> None:
    # rule Y-1: the voice and the number of the caller
    service, who = await setup(engine)
    ticket = await service.register_voice_message(
        "c.2", PHONE, "hotline-vm-c-2", 8.0, TicketType.HELP
    )

    def fetched() -> bool:
        return True

    with pytest.raises(Forbidden):
        await service.recording_access(who["water_h"], ticket.number, "hotline-vm-c-2", fetched)
    with pytest.raises(NotFound):  # a recording of another ticket, through this one
        await service.recording_access(who["agent"], ticket.number, "hotline-vm-other", fetched)
    with pytest.raises(NotFound):  # not fetched from the switch yet: nothing to hear
        await service.recording_access(who["agent"], ticket.number, "hotline-vm-c-2", lambda: False)
    async with engine.connect() as conn:
        before = (await conn.execute(sa.select(sa.func.count()).select_from(identity_access))).one()
    await service.recording_access(who["supervisor"], ticket.number, "hotline-vm-c-2", fetched)
    async with engine.connect() as conn:
        rows = (await conn.execute(identity_access.select())).mappings().all()
    assert len(rows) == before[0] + 1
    assert (rows[-1]["user_id"], rows[-1]["why"]) == (
        who["supervisor"].user_id,
        "voice message hotline-vm-c-2",
    )


async def test_the_job_that_takes_the_recording_in_commits_with_the_ticket(
    engine: AsyncEngine,
) -> None:
    from hotline.bootstrap import EVENT_ROUTES, TAKE_VOICE_MESSAGE
    from hotline.jobs import Outbox, counts, jobs

    service, _ = await setup(engine)
    service.outbox = Outbox(EVENT_ROUTES, service.clock)
    pokes: list[int] = []
    service.outbox.on_commit = lambda: pokes.append(1)
    for _ in range(2):  # the same call twice: one ticket, one job
        await service.register_voice_message(
            "1700000000.5",
            PHONE,
            "hotline-vm-1700000000-5",
            7.0,
            TicketType.HELP,
            stored="hotline-vm-eSEALED",
        )
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(jobs.c.kind, jobs.c.key, jobs.c.payload))).all()
    assert [(r.kind, r.key) for r in rows] == [(TAKE_VOICE_MESSAGE, "hotline-vm-eSEALED")]
    assert '"stored": "hotline-vm-eSEALED"' in rows[0].payload
    assert await counts(engine) == {"due": 1} and pokes == [1]


async def test_a_message_whose_number_is_not_known_says_so(engine: AsyncEngine) -> None:
    service, who = await setup(engine)
    ticket = await service.register_voice_message(
        "1700000000.6", None, "hotline-vm-1700000000-6", 7.0, TicketType.HELP
    )
    (task,) = await service.tasks(who["supervisor"])
    assert ticket.citizen.phone == "" and "来电号码未知" in task.note
