"""A three-way call's outcome on the ticket registered on the call (rule H-6): connected, the
ticket goes to the utility's unit with every number tried on record; no number answered, the
ticket stays with the office, flagged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.ticketing.model import TicketState
from hotline.ticketing.ticket import Leg, ThreeWayCall
from tests.integration.ticketing.test_sla_watch import Office


def conference(call_id: str, connected: str | None) -> ThreeWayCall:
    legs = [Leg("PJSIP/utility-water", "no_answer", 20.0)]
    if connected:
        legs.append(Leg(connected, "answered", 3.1))
    return ThreeWayCall(
        call_id, "water", "water", connected, legs, dt.datetime(2026, 12, 3, 8, tzinfo=dt.UTC)
    )


async def test_a_connected_conference_assigns_the_ticket_to_the_utilitys_unit(
    engine: AsyncEngine,
) -> None:
    office = Office(engine, "2026-12-03T16:00")
    await office.staff()
    t = await office.register(type="help", utility="water", call_id="call-1")
    assert await office.service.three_way_call(conference("call-2", "x")) is None  # no ticket
    done = await office.service.three_way_call(conference("call-1", "PJSIP/utility-water-2"))
    assert done is not None and done.id == t.id
    assert done.state is TicketState.ASSIGNED
    assert [a.unit_id for a in done.assignments] == ["water"]
    (call,) = done.three_way
    assert [(leg.number, leg.outcome) for leg in call.legs] == [
        ("PJSIP/utility-water", "no_answer"),
        ("PJSIP/utility-water-2", "answered"),
    ]
    events = (await office.service.events(office.who["sup"], t.id))[1]
    put = [e for e in events if e.action == "three_way_call" and e.data.get("legs")]
    assert put[0].data["connected"] == "PJSIP/utility-water-2"
    assert put[0].actor == "three-way-call" and "flagged" not in put[0].data


async def test_no_number_answering_leaves_the_ticket_with_the_office_flagged(
    engine: AsyncEngine,
) -> None:
    office = Office(engine, "2026-12-03T16:00")
    await office.staff()
    t = await office.register(type="help", utility="water", call_id="call-9")
    done = await office.service.three_way_call(conference("call-9", None))
    assert done is not None and done.state is TicketState.REGISTERED
    events = (await office.service.events(office.who["sup"], t.id))[1]
    assert [e.data.get("flagged") for e in events if e.data.get("legs")] == [True]


async def test_a_conference_recording_is_taken_off_the_switch_onto_the_ticket(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    import io
    import wave

    from hotline.agi.fake_ari import FakeAsterisk
    from hotline.ivr.services import Recordings
    from hotline.jobs import Job
    from hotline.utility.recordings import ConferenceRecordings, NoTicketYet

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\x10\x27" * 16000)  # 2 s
    fake = FakeAsterisk(stored={"conf-call-5": buffer.getvalue()})
    office = Office(engine, "2026-12-03T16:00")
    await office.staff()
    take = ConferenceRecordings(fake, Recordings(tmp_path), office.service).take
    job = Job(
        1,
        "recording.conference",
        "conf-call-5",
        {"call_id": "call-5", "name": "conf-call-5"},
        1,
        12,
        office.clock.now(),
    )
    with pytest.raises(NoTicketYet):  # registered in the wrap-up, after the call: tried again
        await take(job)
    assert (tmp_path / "conf-call-5.wav").exists()  # kept meanwhile, still on the switch
    assert "conf-call-5" in fake.stored
    t = await office.register(type="help", utility="water", call_id="call-5")
    await take(job)
    got = await office.service.get(office.who["sup"], t.id)
    assert got.recordings == ["conf-call-5"]
    assert "conf-call-5" not in fake.stored  # off the switch once on the ticket
    await take(job)  # run twice: nothing more
    assert (await office.service.get(office.who["sup"], t.id)).recordings == ["conf-call-5"]


async def test_a_utility_emergency_with_its_result_is_a_telephone_callback_task(
    engine: AsyncEngine,
) -> None:
    # rule B-3: the unit fed its result back; the hotline calls the citizen back by telephone
    office = Office(engine, "2026-12-03T16:00")
    await office.staff()
    t = await office.register(type="help", utility="water", call_id="call-7")
    t = await office.service.three_way_call(conference("call-7", "PJSIP/utility-water-2"))
    assert t is not None
    aid = t.assignments[0].id
    t = await office.act("water_h", t, "sign", assignment=aid)
    t = await office.act("water_h", t, "draft_reply", assignment=aid, text="已抢修完毕，恢复供水。")
    t = await office.act("water_l", t, "approve_reply", assignment=aid, approve=True)
    assert not [x for x in await office.service.tasks(office.who["sup"]) if x.ticket == t.number]
    t = await office.act("rev", t, "review", assignment=aid, passed=True)
    tasks = [x for x in await office.service.tasks(office.who["sup"]) if x.ticket == t.number]
    assert [(x.kind, "B-3" in x.note) for x in tasks] == [("phone_callback", True)]
