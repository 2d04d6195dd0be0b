"""What leaves the core: masking for units (Y-1), no identity in public text (P-2)."""

from __future__ import annotations

import json

from hotline.ticketing.model import CallbackResult, Citizen, InternalCategory, RejectReason
from hotline.ticketing.views import (
    open311_listed,
    open311_view,
    public_view,
    publishable,
    scrub,
    ticket_view,
)
from tests.unit.ticketing.conftest import AGENT, OFFICER, SUPERVISOR, World
from tests.unit.ticketing.test_ticket_rules import to_callback

CITIZEN = Citizen("李小龙", "13912345678", "320281199001011234")


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
