"""What leaves the core: masking for units (Y-1), no identity in public text (P-2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hotline.privacy import SEPARATORS
from hotline.ticketing import codec
from hotline.ticketing.model import (
    CallbackResult,
    Citizen,
    InternalCategory,
    RejectReason,
    TicketType,
)
from hotline.ticketing.views import (
    event_views,
    open311_listed,
    open311_view,
    public_view,
    publishable,
    scrub,
    ticket_view,
)
from tests.unit.ticketing.conftest import (
    AGENT,
    DISPATCHER,
    OFFICER,
    REVIEWER,
    SUPERVISOR,
    WATER_HANDLER,
    WATER_LEADER,
    World,
)
from tests.unit.ticketing.test_scrubber_property import leaks, leaks_in, normalised, revealed
from tests.unit.ticketing.test_ticket_rules import to_callback

CITIZEN = Citizen("李小龙", "13912345678", "320281199001011234")
CALLER = Citizen("王小明", "13912340249", "32028119900101123X")  # the number of the leak report
LANDLINE = Citizen("王小明", "0510-86123456")


def test_published_text_never_carries_name_phone_or_identity_number() -> None:
    # rule P-2
    text = (
        "李小龙反映，电话13912345678，身份证320281199001011234，另一号码0510-86123456，"
        "邻居13800001111也说停水"
    )
    clean = scrub(text, CITIZEN)
    for secret in ("李小龙", "13912345678", "320281199001011234", "86123456", "13800001111"):
        assert secret not in clean
    assert "反映" in clean and "停水" in clean


def test_units_see_a_masked_identity_the_office_sees_it_in_clear() -> None:
    # rule Y-1
    world = World()
    t = world.register(citizen=CITIZEN)
    assert ticket_view(t, masked=True)["citizen"] == {
        "name": "李**",
        "phone": "139****5678",
        "id_number": "*" * 18,
    }
    assert ticket_view(t, masked=False)["citizen"]["phone"] == "13912345678"


def test_the_public_view_is_built_from_publishable_fields_only() -> None:
    # rules P-1, P-2
    world = World()
    t = world.register(citizen=CITIZEN, content="李小龙家门口路灯坏了，电话13912345678")
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED)
    assert not publishable(t)  # closed, but not yet decided
    t.decide_publication(world.ctx(SUPERVISOR))
    assert publishable(t)
    view = public_view(t, {"water": "市水务局"})
    assert set(view) == {
        "number",
        "type",
        "subject",
        "content",
        "registered_at",
        "closed_at",
        "answer",
        "replies",
    }
    dumped = json.dumps(view, ensure_ascii=False)
    assert "13912345678" not in dumped and "李小龙" not in dumped
    assert view["replies"][0]["unit"] == "市水务局"


def test_open311_lists_open_requests_and_published_ones_never_internal_or_opted_out() -> None:
    world = World()
    open_one = world.register()
    assert open311_listed(open_one) and open311_view(open_one, {})["status"] == "open"
    opted_out = world.register(publish_consent=False)  # rule P-1(2)
    assert not open311_listed(opted_out)
    internal = world.register()
    internal.transfer_internal(
        world.ctx(OFFICER), InternalCategory.DISCIPLINE, "jw", "市纪委监委", "0510-1"
    )  # rule T-5
    assert not open311_listed(internal)


def test_a_masked_view_scrubs_identity_from_every_free_text() -> None:
    # rule Y-1: agents type names and numbers into the request; units must not read them
    world = World()
    t = world.register(
        citizen=CITIZEN,
        content="李小龙来电，电话13912345678，要求回复",
        subject="李小龙反映",
        address="李小龙家门口",
    )
    t.reject(world.ctx(AGENT), RejectReason.TOO_VAGUE, "已向李小龙解释")
    view = json.dumps(ticket_view(t, masked=True), ensure_ascii=False)
    assert "李小龙" not in view and "13912345678" not in view
    assert t.number in view  # ticket numbers and times are not mistaken for phone numbers


# -- every way of writing a number (rules Y-1, P-2) -------------------------------------------
CALLER_FORMS = [
    "13912340249",
    "139 1234 0249",
    "139-1234-0249",
    "139.1234.0249",
    "+86 139 1234 0249",
    "+8613912340249",
    "0086-139-1234-0249",
    "86 13912340249",
    "(139)1234 0249",
    "１３９１２３４０２４９",
    "１３９－１２３４－０２４９",
    "139　1234　0249",  # ideographic spaces
    "139 - 1234 - 0249",
    "1391234",  # a partial number: 7 digits of the citizen's own
    "12340249",
    "913912340249",  # glued to another digit
]
LANDLINE_FORMS = [
    "0510-86123456",
    "(0510)86123456",
    "（0510）8612 3456",
    "0510-8612 3456",
    "0510 86123456",
    "+86 510 8612 3456",
    "86123456",
    "8612-3456",
    "０５１０－８６１２３４５６",
]


def forms_ticket(world: World, citizen: Citizen, form: str) -> Any:
    return world.register(
        citizen=citizen,
        subject=f"来电{form}反映",
        content=f"市民来电，号码{form}，反映小区门口路灯坏了三天",
        address=f"幸福路8号（联系{form}）",
    )


@pytest.mark.parametrize("form", CALLER_FORMS)
def test_a_unit_never_reads_the_citizens_mobile_in_any_form(form: str) -> None:
    # rule Y-1: separators, +86, full width or a partial number: still the citizen's number
    world = World()
    t = forms_ticket(world, CALLER, form)
    view = ticket_view(t, masked=True, unit="water")
    assert leaks_in(view, CALLER.phone) == []
    assert "市民来电" in view["content"] and "幸福路8号" in view["address"]


@pytest.mark.parametrize("form", LANDLINE_FORMS)
def test_a_unit_never_reads_the_citizens_landline_in_any_form(form: str) -> None:
    # rule Y-1: area code with or without parentheses, the local part split or alone
    world = World()
    t = forms_ticket(world, LANDLINE, form)
    assert leaks_in(ticket_view(t, masked=True, unit="water"), "051086123456") == []


@pytest.mark.parametrize("form", CALLER_FORMS + LANDLINE_FORMS)
def test_the_public_page_and_open311_never_carry_the_number_in_any_form(form: str) -> None:
    # rules P-1, P-2
    world = World()
    citizen = LANDLINE if form in LANDLINE_FORMS else CALLER
    t = forms_ticket(world, citizen, form)
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED)
    t.decide_publication(world.ctx(SUPERVISOR))
    for out in (public_view(t, {}), open311_view(t, {})):
        assert leaks_in(out, citizen.phone) == []
    assert public_view(t, {})["number"] == t.number


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("邻居电话 138 0000 1111 也停水", "13800001111"),
        ("邻居 +86 138-0000-1111", "13800001111"),
        ("邻居１３８００００１１１１", "13800001111"),
        ("物业(0510)86001234", "051086001234"),
        ("物业（0510）8600 1234", "051086001234"),
        ("物业0510-8600 1234", "051086001234"),
        ("上海021-6123 4567", "02161234567"),
        ("物业 8600 1234", "86001234"),
        ("物业8600-1234", "86001234"),
    ],
)
def test_other_peoples_numbers_are_masked_in_the_same_forms(text: str, secret: str) -> None:
    # rule P-2 (as before, now also written with separators or in full width)
    clean = scrub(text, CALLER)
    assert leaks(clean, secret) == [] and "*" in clean


@pytest.mark.parametrize(
    "text",
    [
        "身份证32028119900101123X",
        "身份证 320281 19900101 123X",
        "身份证３２０２８１１９９００１０１１２３Ｘ",
        "另一人身份证 110101 19851231 0018",
    ],
)
def test_identity_numbers_are_masked_also_with_spaces(text: str) -> None:
    # rule Y-1
    clean = scrub(text, CALLER)
    assert sum(c.isdigit() for c in normalised(clean)) == 0


@pytest.mark.parametrize(
    "text",
    [
        "工单20261127-0042已办结",
        "见工单 20261127-0042 和 20261127-0043",
        "2026-11-27前修好",
        "2026.11.27 上门",
        "补偿300 元，共 2 户",
        "幸福路8号3栋201室",
        "请拨12345热线",
        "09:00-17:30在家",
    ],
)
def test_ticket_numbers_dates_and_short_numbers_are_not_mistaken_for_phones(text: str) -> None:
    assert scrub(text, CALLER) == text  # rule P-2 masks identity, nothing else


def test_a_ticket_number_that_is_the_citizens_number_is_still_masked() -> None:
    # rule Y-1: a run of 7 digits of the citizen's own number, whatever shape it has
    citizen = Citizen("王小明", "13920261127")
    assert leaks(scrub("工单20261127-0042", citizen), citizen.phone) == []


@pytest.mark.parametrize("form", ["13912340249", "139 1234 0249", "+86 139-1234-0249"])
@pytest.mark.parametrize("start", range(26, 41))
def test_the_default_subject_never_cuts_the_number_in_two(form: str, start: int) -> None:
    # rule Y-1: the subject is the content's head; cut inside the number, its first digits and
    # the masked phone (139****0249) together rebuilt it (10 of 11 digits were published)
    filler = "市民反映小区门口路灯坏了三天，晚上出行很不方便，希望尽快派人修复，联系方式"
    world = World()
    t = world.register(citizen=CALLER, subject="", content=filler[:start] + form + "，谢谢")
    view = ticket_view(t, masked=True, unit="water")
    masked = view["citizen"]["phone"]
    assert masked == "139****0249"
    mask_shows = {k for k, c in enumerate(masked) if c.isdigit()}
    shown = revealed(view["subject"], CALLER.phone) | mask_shows
    assert shown == mask_shows, view["subject"]  # the subject adds no digit to the mask's
    assert leaks(view["subject"] + masked, CALLER.phone) == []  # < 7 digits in order
    assert view["subject"].startswith(filler[:start])


def test_the_publication_note_is_scrubbed_for_units() -> None:
    # rule Y-1: every free text of the aggregate, the office's notes included
    world = World()
    t = world.register(citizen=CALLER)
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED, "王小明满意，回电139-1234-0249")
    t.decide_publication(world.ctx(SUPERVISOR), note="王小明同意公开，电话13912340249")
    view = ticket_view(t, masked=True, unit="water")
    assert view["publication"]["note"].startswith("***同意公开")
    dumped = json.dumps(view, ensure_ascii=False)
    assert "王小明" not in dumped and leaks_in(view, CALLER.phone) == []


def test_every_free_text_of_the_aggregate_is_scrubbed_for_units() -> None:
    # rule Y-1: reply, extension, return, callback, review, proposal — one scrubber for all
    world = World()
    t = world.register(citizen=CALLER, content="路灯坏了")
    t.assign(world.ctx(DISPATCHER), ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER), a.id)
    t.request_return(
        world.ctx(WATER_HANDLER), a.id, "非本单位，王小明139 1234 0249", "三定", "roads"
    )
    t.decide_return(world.ctx(SUPERVISOR), a.id, False, "退回不成立，已告知王小明 1391234")
    t.request_extension(
        world.ctx(WATER_LEADER, "2026-11-22T10:00"),
        a.id,
        "需联系王小明（139）1234-0249",
        2,
        "已约王小明",
        "回电+8613912340249",
    )
    t.decide_extension(world.ctx(SUPERVISOR), a.id, True, 2, "同意，王小明１３９１２３４０２４９")
    t.draft_reply(world.ctx(WATER_HANDLER), a.id, "已修复，已电话139.1234.0249告知王小明")
    t.approve_reply(world.ctx(WATER_LEADER), a.id, True)
    t.propose_no_publication(world.ctx(WATER_LEADER), a.id, "涉及王小明隐私13912340249")
    t.review(world.ctx(REVIEWER), a.id, True, "王小明 139 1234 0249 已确认")
    view = ticket_view(t, masked=True, unit="water")
    dumped = json.dumps(view, ensure_ascii=False)
    assert "王小明" not in dumped and leaks_in(view, CALLER.phone) == []
    assert view["id"] == t.id and view["number"] == t.number
    assert view["assignments"][0]["id"] == a.id


def test_answers_internal_notices_and_results_are_scrubbed_too() -> None:
    # rule Y-1: the office's texts reach a masked view as well (action replies are masked)
    world = World()
    answered = world.register(TicketType.CONSULTATION, citizen=CALLER)
    answered.answer_on_spot(world.ctx(AGENT), "已告知王小明，可回拨0510-8600 1234")
    internal = world.register(citizen=CALLER)
    internal.transfer_internal(
        world.ctx(OFFICER), InternalCategory.DISCIPLINE, "jw", "市纪委监委", "139 1234 0249"
    )
    internal.internal_result(world.ctx(OFFICER), "已核实，王小明（139）12340249反映属实")
    for t in (answered, internal):
        view = ticket_view(t, masked=True)
        assert "王小明" not in json.dumps(view, ensure_ascii=False)
        assert leaks_in(view, CALLER.phone) == [] and leaks_in(view, "051086001234") == []


@pytest.mark.parametrize("sep", [*SEPARATORS, " ", "\u3000", "\t", "\u00a0"])
def test_the_subject_cut_knows_every_separator_the_scrubber_joins(sep: str) -> None:
    # rule Y-1: ticket.py's cut and hotline.privacy agree on what a run of a number is
    world = World()
    head = "市民反映小区门口路灯坏了三天晚上出行很不方便希望尽快派人修复联系"[:37]
    number = sep.join(("139", "1234", "0249"))
    t = world.register(citizen=CALLER, subject="", content=head + number + "，谢谢")
    assert len(t.subject) >= len(head + number)
    assert revealed(ticket_view(t, masked=True)["subject"], CALLER.phone) == set()


def test_notes_in_the_event_log_are_scrubbed_for_a_masked_reader() -> None:
    # rule Y-1: the re-handling note travels in the event's data, and units read the log
    world = World()
    t = world.register(citizen=CALLER)
    t.assign(world.ctx(DISPATCHER), ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER), a.id)
    t.draft_reply(world.ctx(WATER_HANDLER), a.id, "已派人现场查看并修复路灯，今晚恢复照明。")
    t.approve_reply(world.ctx(WATER_LEADER), a.id, False, "先回电王小明 139 1234 0249 核实")
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.UNSATISFIED, "王小明不满意")
    t.rehandle(world.ctx(REVIEWER), note="王小明要求重办，回电+86 139-1234-0249")
    raw = [codec.to_json(e) for e in t.events]
    assert leaks_in(raw, CALLER.phone) != [] and "王小明" in json.dumps(raw, ensure_ascii=False)
    masked = event_views(t.events, CALLER, masked=True)
    dumped = json.dumps(masked, ensure_ascii=False)
    assert "王小明" not in dumped and leaks_in(masked, CALLER.phone) == []
    rehandle = next(e for e in masked if e["action"] == "rehandle")
    assert rehandle["data"]["note"].startswith("***要求重办") and rehandle["data"]["units"] == [
        "water"
    ]
    assert [e["data"].get("assignment") for e in masked] == [
        e["data"].get("assignment") for e in raw
    ]  # ids stay as they are
    assert event_views(t.events, CALLER, masked=False) == raw  # the office reads them in clear


def test_a_units_view_of_an_emergency_keeps_its_structure_and_scrubs_its_notes() -> None:
    # rule Y-1: the plan's free texts are scrubbed for a unit; its grounds and times are not
    from hotline.ticketing.model import EmergencyGround
    from tests.unit.ticketing.conftest import SUPERVISOR, World

    w = World("2026-11-17T23:40")
    t = w.register(type=TicketType.HELP)
    t.mark_emergency(w.ctx(AGENT), EmergencyGround.HARM_NOW, "张三说13800138000家门口漏水")
    t.emergency_decision(w.ctx(SUPERVISOR), True, "office", "water", "联系人13800138000")
    t.assign(w.ctx(DISPATCHER), ["water"])
    view = ticket_view(t, masked=True, unit="water")
    e = view["emergency"]
    assert (e["ground"], e["level"], e["unit"]) == ("harm_now", "office", "water")
    assert e["marked_at"] == t.emergency.marked_at.isoformat()  # a time, not a masked number
    text = json.dumps(view, ensure_ascii=False)
    assert "13800138000" not in text and "张三" not in text
    assert view["assignments"][0]["response"]["due"] == "2026-11-18T00:10:00+08:00"
