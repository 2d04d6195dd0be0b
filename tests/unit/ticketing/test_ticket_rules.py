"""The ticket aggregate under the rule book: groups I, D, H, T, B, P, Y (C in test_calendar_sla)."""

from __future__ import annotations

import pytest

from hotline.config.settings import RulesSettings
from hotline.ticketing.model import (
    Actor,
    AssignmentState,
    CallbackResult,
    Channel,
    InternalCategory,
    RejectReason,
    Role,
    TicketError,
    TicketState,
    TicketType,
)
from hotline.ticketing.ticket import TRANSITIONS, Ticket
from tests.unit.ticketing.conftest import (
    AGENT,
    DISPATCHER,
    OFFICER,
    REVIEWER,
    ROADS_HANDLER,
    ROADS_LEADER,
    SUPERVISOR,
    WATER_HANDLER,
    WATER_LEADER,
    World,
    at,
)

A = AssignmentState
T = TicketState


def assigned(world: World, ticket: Ticket, units: list[str], lead: str | None = None) -> None:
    ticket.assign(world.ctx(DISPATCHER), units, lead)


def replied(world: World, ticket: Ticket, unit: str) -> None:
    handler, leader = {
        "water": (WATER_HANDLER, WATER_LEADER),
        "roads": (ROADS_HANDLER, ROADS_LEADER),
    }[unit]
    a = ticket.assignment_for(unit)
    assert a is not None
    if a.state is A.ASSIGNED:
        ticket.sign(world.ctx(handler), a.id)
    ticket.draft_reply(world.ctx(handler), a.id, "已派人现场查看并修复路灯，今晚恢复照明。")
    ticket.approve_reply(world.ctx(leader), a.id, True)


def to_callback(world: World, ticket: Ticket, units: tuple[str, ...] = ("water",)) -> None:
    if ticket.state is T.REGISTERED:
        assigned(world, ticket, list(units), units[0] if len(units) > 1 else None)
    for unit in units:
        a = ticket.assignment_for(unit)
        if a is not None and a.state not in (A.REPLIED, A.ACCEPTED):
            replied(world, ticket, unit)
    for a in ticket.live_assignments():
        if a.state is A.REPLIED:
            ticket.review(world.ctx(REVIEWER), a.id, True)
    assert ticket.state is T.CALLBACK


def error(fn: object, *args: object, **kw: object) -> TicketError:
    with pytest.raises(TicketError) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return info.value


# -- I: intake --------------------------------------------------------------------------------
def test_every_request_type_can_be_registered(world: World) -> None:
    for kind in TicketType:  # rule I-1
        t = world.register(kind)
        assert (t.type, t.state) == (kind, T.REGISTERED)
        assert t.events[0].action == "register" and t.events[0].rule == "I-1"


def test_pushed_tickets_must_carry_the_upstream_id(world: World) -> None:
    # rule I-2
    e = error(world.register, channel=Channel.PROVINCIAL_PLATFORM)
    assert (e.code, e.rule) == ("upstream_id_required", "I-2")
    t = world.register(channel=Channel.PROVINCIAL_PLATFORM, upstream_id="JS-2026-001")
    assert t.upstream_id == "JS-2026-001"
    assert world.register(channel=Channel.WECHAT).upstream_id is None  # own channels need none


def test_an_empty_request_is_not_registered(world: World) -> None:
    assert error(world.register, content="  ").code == "content_required"  # rule I-1


@pytest.mark.parametrize("reason", list(RejectReason))
def test_rejection_records_which_of_the_nine_reasons_and_the_explanation(
    world: World, reason: RejectReason
) -> None:
    # rules I-3, I-4
    t = world.register()
    t.reject(world.ctx(AGENT), reason, "已告知市民拨打110或到有管辖权的部门反映")
    assert t.state is T.REJECTED
    assert t.rejection == (reason, "已告知市民拨打110或到有管辖权的部门反映")
    assert t.events[-1].rule == "I-3" and t.events[-1].data["reason"] == reason.value


def test_a_rejection_without_the_explanation_is_refused(world: World) -> None:
    t = world.register()
    e = error(t.reject, world.ctx(AGENT), RejectReason.TOO_VAGUE, " ")
    assert (e.code, e.rule) == ("explanation_required", "I-4")
    assert t.state is T.REGISTERED and len(t.events) == 1  # nothing changed


def test_a_consultation_answered_on_the_spot_is_closed_at_once(world: World) -> None:
    # rule I-5
    t = world.register(TicketType.CONSULTATION, content="公积金怎么提取？")
    t.answer_on_spot(world.ctx(AGENT), "携带身份证到公积金中心办理", knowledge_id="K-17")
    assert (t.state, t.closed_how, t.closed_at) == (T.CLOSED, "answered_on_spot", world.now)
    complaint = world.register(TicketType.COMPLAINT)
    e = error(complaint.answer_on_spot, world.ctx(AGENT), "x")
    assert (e.code, e.rule) == ("not_a_consultation", "I-5")


# -- D: dispatch ------------------------------------------------------------------------------
def test_assigning_within_two_working_hours_is_on_time(world: World) -> None:
    # rule D-1
    t = world.register()  # 2026-11-16 09:00
    assert t.assign_deadline.due == at("2026-11-16T11:00")
    t.assign(world.ctx(DISPATCHER, "2026-11-16T10:59"), ["water"])
    assert t.assign_deadline.late is False
    assert t.state is T.ASSIGNED and t.events[-1].data["late"] is False


def test_assigning_late_is_recorded_as_late(world: World) -> None:
    t = world.register()
    t.assign(world.ctx(DISPATCHER, "2026-11-16T14:00"), ["water"])  # rule D-1
    assert t.assign_deadline.late is True


def test_several_units_with_a_lead_get_one_working_day(world: World) -> None:
    # rules D-1, D-5
    t = world.register()
    t.assign(world.ctx(DISPATCHER, "2026-11-16T14:00"), ["water", "roads"], lead="roads")
    assert t.assign_deadline.due == at("2026-11-17T09:00") and t.assign_deadline.late is False
    lead = t.assignment_for("roads")
    assert lead is not None and lead.lead and not t.assignment_for("water").lead  # type: ignore[union-attr]


def test_the_lead_must_be_one_of_the_units(world: World) -> None:
    t = world.register()
    e = error(t.assign, world.ctx(DISPATCHER), ["water"], "roads")
    assert (e.code, e.rule) == ("lead_not_assigned", "D-5")


def test_signing_within_four_working_hours(world: World) -> None:
    # rule D-3
    t = world.register()
    assigned(world, t, ["water"])
    a = t.assignments[0]
    assert a.sign.due == at("2026-11-16T14:30")  # 09:00 + 3 h morning + 1 h afternoon
    t.sign(world.ctx(WATER_HANDLER, "2026-11-16T14:45"), a.id)
    assert a.state is A.SIGNED and a.sign.late is True


def test_a_return_needs_reason_basis_and_suggested_unit(world: World) -> None:
    # rule D-4
    t = world.register()
    assigned(world, t, ["water"])
    e = error(t.request_return, world.ctx(WATER_HANDLER), t.assignments[0].id, "不归我们管", "", "")
    assert (e.code, e.rule) == ("return_fields_required", "D-4")
    assert "basis" in e.message and "suggested_unit" in e.message


def test_a_justified_return_is_reassigned_to_another_unit(world: World) -> None:
    # rule D-4
    t = world.register()
    assigned(world, t, ["water"])
    first = t.assignments[0]
    t.request_return(
        world.ctx(WATER_HANDLER, "2026-11-16T10:00"),
        first.id,
        "路灯属市政设施",
        "《城市照明管理规定》第五条",
        "roads",
    )
    assert first.state is A.RETURN_REQUESTED and first.return_window.late is False
    t.decide_return(world.ctx(DISPATCHER), first.id, True, "理由充分", reassign_to=["roads"])
    assert first.state is A.RETURNED
    assert [a.unit_id for a in t.live_assignments()] == ["roads"]
    assert t.state is T.ASSIGNED


def test_an_unjustified_return_stays_and_a_second_return_is_refused(world: World) -> None:
    # rule D-4
    t = world.register()
    assigned(world, t, ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER), a.id)
    t.request_return(world.ctx(WATER_HANDLER), a.id, "不归我们管", "三定方案", "roads")
    t.decide_return(world.ctx(DISPATCHER), a.id, False, "属供水管网，理由不充分")
    assert a.state is A.SIGNED and t.return_refused_units == ["water"]  # back where it was
    e = error(
        t.request_return, world.ctx(WATER_LEADER), a.id, "还是不归我们管", "另一依据", "roads"
    )
    assert (e.code, e.rule) == ("second_return_refused", "D-4")
    assert a.state is A.SIGNED


def test_a_return_after_one_working_day_is_recorded_late(world: World) -> None:
    t = world.register()
    assigned(world, t, ["water"])  # 09:00 Monday; return window ends 09:00 Tuesday
    t.request_return(
        world.ctx(WATER_HANDLER, "2026-11-17T10:00"),
        t.assignments[0].id,
        "不归我们管",
        "依据",
        "roads",
    )
    assert t.assignments[0].return_window.late is True  # rule D-4, counted under S-5


def test_each_unit_handles_its_part_and_review_waits_for_all(world: World) -> None:
    # rule D-5
    t = world.register()
    assigned(world, t, ["water", "roads"], "water")
    replied(world, t, "water")
    assert t.state is T.ASSIGNED  # roads still handling
    replied(world, t, "roads")
    assert t.state is T.REVIEW


def test_repeat_requests_stop_after_more_than_three_timely_replies(world: World) -> None:
    # rule D-6
    t = world.register(repeat_of="t-earlier")
    e = error(t.stop_repeat, world.ctx(DISPATCHER), 3, False, "不再交办")
    assert (e.code, e.rule) == ("repeat_limit_not_reached", "D-6")
    e = error(t.stop_repeat, world.ctx(DISPATCHER), 5, True, "不再交办")
    assert e.code == "repeat_limit_not_reached"  # new facts: it goes on
    t.stop_repeat(world.ctx(DISPATCHER), 4, False, "同一诉求已及时答复4次，无新情况")
    assert (t.state, t.closed_how) == (T.CLOSED, "repeat_not_assigned")


def test_the_repeat_limit_is_a_rule_table_number() -> None:
    world = World(rules=RulesSettings(repeat_reply_limit=5))
    t = world.register(repeat_of="t-earlier")
    assert error(t.stop_repeat, world.ctx(DISPATCHER), 5, False, "x").code == (
        "repeat_limit_not_reached"
    )


# -- H: handling ------------------------------------------------------------------------------
def test_handling_deadline_is_three_working_days_for_consultations_five_otherwise(
    world: World,
) -> None:
    # rule H-1
    c = world.register(TicketType.CONSULTATION)
    assigned(world, c, ["water"])
    assert c.assignments[0].handle.due == at("2026-11-19T09:00")
    o = world.register(TicketType.HELP)
    assigned(world, o, ["water"])
    assert o.assignments[0].handle.due == at("2026-11-23T09:00")


def test_an_upper_level_deadline_wins(world: World) -> None:
    # rule H-1 (Art. 10(4))
    t = world.register(
        channel=Channel.NATIONAL_PLATFORM, upstream_id="GJ-1", upstream_due=at("2026-11-18T17:00")
    )
    assigned(world, t, ["water"])
    assert t.assignments[0].handle.due == at("2026-11-18T17:00")


def test_site_photos_go_with_the_reply(world: World) -> None:
    # rule H-2
    t = world.register()
    assigned(world, t, ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER), a.id)
    t.draft_reply(
        world.ctx(WATER_HANDLER),
        a.id,
        "已到现场处理完毕，附现场照片。",
        ("photo-1.jpg", "photo-2.jpg"),
    )
    assert a.reply is not None and a.reply.attachments == ("photo-1.jpg", "photo-2.jpg")


def extension_case(world: World) -> tuple[Ticket, str]:
    t = world.register()  # Monday 09:00; handling due Monday 23 Nov 09:00
    assigned(world, t, ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER), a.id)
    return t, a.id


def test_an_extension_inside_the_window_with_its_four_fields_is_decided_by_the_office(
    world: World,
) -> None:
    # rule H-3
    t, aid = extension_case(world)
    t.request_extension(
        world.ctx(WATER_LEADER, "2026-11-22T10:00"), aid, "管网需停水施工", 3, "已勘察", "周三施工"
    )
    t.decide_extension(world.ctx(SUPERVISOR), aid, True, 2, "同意延期2个工作日")
    a = t.assignments[0]
    assert a.handle.due == at("2026-11-25T09:00")
    assert a.extensions[0].granted_days == 2


def test_an_extension_outside_its_window_is_refused(world: World) -> None:
    # rule H-3: the literal reading, inside the 24 hours before the deadline
    t, aid = extension_case(world)
    e = error(
        t.request_extension,
        world.ctx(WATER_LEADER, "2026-11-20T10:00"),
        aid,
        "原因",
        2,
        "进展",
        "安排",
    )
    assert (e.code, e.rule) == ("extension_outside_window", "H-3")
    e = error(
        t.request_extension,
        world.ctx(WATER_LEADER, "2026-11-23T09:30"),
        aid,
        "原因",
        2,
        "进展",
        "安排",
    )
    assert e.code == "extension_outside_window"  # after the deadline


def test_the_other_reading_of_the_extension_window() -> None:
    # rule H-3: cities that read it as "no later than 24 hours before"
    world = World(rules=RulesSettings(extension_window="before"))
    t, aid = extension_case(world)
    e = error(
        t.request_extension,
        world.ctx(WATER_LEADER, "2026-11-22T10:00"),
        aid,
        "原因",
        2,
        "进展",
        "安排",
    )
    assert e.code == "extension_outside_window"
    t.request_extension(world.ctx(WATER_LEADER, "2026-11-20T10:00"), aid, "原因", 2, "进展", "安排")


def test_an_extension_needs_its_four_fields_and_the_leader(world: World) -> None:
    # rule H-3
    t, aid = extension_case(world)
    e = error(
        t.request_extension, world.ctx(WATER_LEADER, "2026-11-22T10:00"), aid, "原因", 0, "", "安排"
    )
    assert (e.code, e.rule) == ("extension_fields_required", "H-3")
    assert "progress" in e.message and "extra_days" in e.message
    e = error(
        t.request_extension,
        world.ctx(WATER_HANDLER, "2026-11-22T10:00"),
        aid,
        "原因",
        1,
        "进展",
        "安排",
    )
    assert (e.code, e.rule) == ("role_required", "H-3")


def test_an_extension_is_capped_at_one_original_cycle(world: World) -> None:
    # rule H-3
    t, aid = extension_case(world)
    e = error(
        t.request_extension,
        world.ctx(WATER_LEADER, "2026-11-22T10:00"),
        aid,
        "原因",
        6,
        "进展",
        "安排",
    )
    assert (e.code, e.rule) == ("extension_too_long", "H-3")
    t.request_extension(world.ctx(WATER_LEADER), aid, "原因", 5, "进展", "安排")
    t.decide_extension(world.ctx(SUPERVISOR), aid, True)
    assert t.assignments[0].handle.due == at("2026-11-30T09:00")
    # inside the window before the new deadline, one more day would exceed one cycle of 5
    e = error(
        t.request_extension,
        world.ctx(WATER_LEADER, "2026-11-30T08:00"),
        aid,
        "再延",
        1,
        "进展",
        "安排",
    )
    assert e.code == "extension_too_long"


def test_a_refused_extension_leaves_the_deadline(world: World) -> None:
    t, aid = extension_case(world)
    t.request_extension(world.ctx(WATER_LEADER, "2026-11-22T10:00"), aid, "原因", 2, "进展", "安排")
    t.decide_extension(world.ctx(SUPERVISOR), aid, False, note="理由不足")
    assert t.assignments[0].handle.due == at("2026-11-23T09:00")  # rule H-3


def test_the_reply_reaches_the_office_only_after_the_leader_approves(world: World) -> None:
    # rule H-4
    t = world.register()
    assigned(world, t, ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER), a.id)
    t.draft_reply(world.ctx(WATER_HANDLER), a.id, "已处理完毕，具体如下：……")
    assert a.state is A.REPLY_DRAFTED and t.state is T.ASSIGNED
    e = error(t.approve_reply, world.ctx(WATER_HANDLER), a.id, True)
    assert (e.code, e.rule) == ("role_required", "H-4")
    t.approve_reply(world.ctx(WATER_LEADER), a.id, False, "写明后续措施")
    assert a.state is A.SIGNED
    t.draft_reply(world.ctx(WATER_HANDLER), a.id, "已处理完毕，后续每周巡查一次。")
    t.approve_reply(world.ctx(WATER_LEADER), a.id, True)
    assert a.state is A.REPLIED and t.state is T.REVIEW


def test_a_vague_reply_is_refused(world: World) -> None:
    t = world.register()
    assigned(world, t, ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER), a.id)
    assert error(t.draft_reply, world.ctx(WATER_HANDLER), a.id, "已办").code == "reply_too_short"


def test_review_send_back_keeps_the_original_deadline(world: World) -> None:
    # rule H-5
    t = world.register()
    assigned(world, t, ["water"])
    replied(world, t, "water")
    a = t.assignments[0]
    due = a.handle.due
    assert a.handle.late is False
    t.review(world.ctx(REVIEWER), a.id, False, "未说明处理结果")
    assert (a.state, a.sent_back, a.handle.due, a.handle.done) == (A.SIGNED, 1, due, None)
    assert t.state is T.ASSIGNED
    world.now = at("2026-11-24T10:00")  # past the original deadline
    t.draft_reply(world.ctx(WATER_HANDLER), a.id, "补充：已于周二修复并回访，问题解决。")
    t.approve_reply(world.ctx(WATER_LEADER), a.id, True)
    assert a.handle.late is True


def test_a_send_back_says_what_is_missing(world: World) -> None:
    t = world.register()
    assigned(world, t, ["water"])
    replied(world, t, "water")
    e = error(t.review, world.ctx(REVIEWER), t.assignments[0].id, False, "")
    assert (e.code, e.rule) == ("note_required", "H-5")


# -- B: callback and closing ------------------------------------------------------------------
def test_callback_deadline_is_two_working_days_from_the_replies(world: World) -> None:
    # rule B-1 (clock from the office receiving the reply, Art. 9(6))
    t = world.register()
    assigned(world, t, ["water"])
    world.now = at("2026-11-18T16:00")
    replied(world, t, "water")
    assert t.callback_deadline is not None
    assert t.callback_deadline.due == at("2026-11-20T16:00")
    t.review(world.ctx(REVIEWER), t.assignments[0].id, True)
    t.callback(world.ctx(AGENT, "2026-11-23T09:00"), CallbackResult.SATISFIED)
    assert t.callbacks[0].late is True


@pytest.mark.parametrize("result", [CallbackResult.SATISFIED, CallbackResult.NO_OBJECTION])
def test_satisfied_or_no_objection_closes(world: World, result: CallbackResult) -> None:
    # rule B-2
    t = world.register()
    to_callback(world, t)
    t.callback(world.ctx(AGENT), result)
    assert (t.state, t.closed_how) == (T.CLOSED, result.value)


def test_two_dissatisfied_callbacks_end_in_an_office_close(world: World) -> None:
    # rule B-2
    t = world.register()
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.UNSATISFIED, "路灯仍不亮")
    assert t.state is T.DISSATISFIED
    e = error(t.office_close, world.ctx(SUPERVISOR), "办结")
    assert (e.code, e.rule) == ("rehandle_first", "B-2")
    t.rehandle(world.ctx(REVIEWER), note="重新办理")
    again = t.live_assignments()
    assert [a.round for a in again] == [2] and again[0].state is A.ASSIGNED
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.UNSATISFIED, "仍不满意")
    t.office_close(world.ctx(SUPERVISOR), "已按规定处理，诉求人要求超出政策范围，予以办结")
    assert (t.state, t.closed_how) == (T.CLOSED, "office_decision")
    assert t.decision.startswith("已按规定")


# -- T: internal transfer ---------------------------------------------------------------------
def test_discipline_matters_go_internal_through_the_designated_officer(world: World) -> None:
    # rules T-1, T-4
    t = world.register(content="举报某局干部收受红包")
    e = error(
        t.transfer_internal,
        world.ctx(SUPERVISOR),
        InternalCategory.DISCIPLINE,
        "jw",
        "市纪委监委",
        "0510-12345678",
    )
    assert (e.code, e.rule) == ("role_required", "T-1")
    t.transfer_internal(
        world.ctx(OFFICER), InternalCategory.DISCIPLINE, "jw", "市纪委监委", "0510-12345678"
    )
    assert t.state is T.INTERNAL
    assert t.internal is not None and t.internal.notice == (
        "您所反映的问题已转由市纪委监委内部办理，市纪委监委的联系方式是0510-12345678"
    )


def test_work_style_transfers_file_a_copy_with_the_commission(world: World) -> None:
    # rule T-2
    t = world.register()
    t.transfer_internal(
        world.ctx(SUPERVISOR), InternalCategory.WORK_STYLE, "roads", "市住建局", "0510-1111"
    )
    assert t.internal is not None and t.internal.filing_copy_to_discipline


def test_an_internal_transfer_is_never_published(world: World) -> None:
    # rule T-5, P-1(1)
    t = world.register()
    t.transfer_internal(
        world.ctx(OFFICER), InternalCategory.DISCIPLINE, "jw", "市纪委监委", "0510-1"
    )
    t.internal_result(world.ctx(OFFICER), "已依纪处理")
    assert t.state is T.CLOSED and not t.published
    assert t.publication is not None and t.publication.exception == "internal_transfer"
    e = error(t.decide_publication, world.ctx(SUPERVISOR))
    assert (e.code, e.rule) == ("internal_never_published", "T-5")
    assert not t.published


# -- P: publication ---------------------------------------------------------------------------
def closed(world: World, **kw: object) -> Ticket:
    t = world.register(**kw)
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED)
    return t


def test_a_closed_ticket_is_published_by_default(world: World) -> None:
    t = closed(world)
    t.decide_publication(world.ctx(SUPERVISOR))  # rule P-1
    assert t.published and t.publication.exception is None  # type: ignore[union-attr]


def test_the_citizen_may_choose_not_to_publish(world: World) -> None:
    t = closed(world, publish_consent=False)
    t.decide_publication(world.ctx(SUPERVISOR))  # rule P-1(2)
    assert not t.published and t.publication.exception == "citizen_opted_out"  # type: ignore[union-attr]


def test_a_units_proposal_not_to_publish_needs_the_office_to_agree(world: World) -> None:
    # rule P-1(3)
    t = world.register()
    assigned(world, t, ["water"])
    replied(world, t, "water")
    t.propose_no_publication(world.ctx(WATER_LEADER), t.assignments[0].id, "涉及在建工程安全")
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED)
    t.decide_publication(world.ctx(SUPERVISOR), agree_with_unit=False)
    assert t.published  # the office did not agree
    t.decide_publication(world.ctx(SUPERVISOR), agree_with_unit=True)
    assert not t.published and t.publication.exception == "unit_proposal"  # type: ignore[union-attr]


def test_agreeing_with_a_proposal_nobody_made_is_refused(world: World) -> None:
    t = closed(world)
    e = error(t.decide_publication, world.ctx(SUPERVISOR), agree_with_unit=True)
    assert (e.code, e.rule) == ("no_unit_proposal", "P-1")


def test_the_law_may_forbid_publication(world: World) -> None:
    t = closed(world)
    t.decide_publication(world.ctx(SUPERVISOR), law_forbids=True)  # rule P-1(4)
    assert not t.published and t.publication.exception == "law_forbids"  # type: ignore[union-attr]


# -- Y: units act on their own assignments only -----------------------------------------------
def test_a_unit_cannot_act_on_another_units_assignment(world: World) -> None:
    # rule Y-1
    t = world.register()
    assigned(world, t, ["water", "roads"], "water")
    e = error(t.sign, world.ctx(ROADS_HANDLER), t.assignment_for("water").id)  # type: ignore[union-attr]
    assert (e.code, e.rule) == ("not_your_assignment", "Y-1")


# -- the aggregate's bookkeeping --------------------------------------------------------------
def test_every_change_appends_an_event_and_a_refusal_appends_none(world: World) -> None:
    t = world.register()
    assigned(world, t, ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER, "2026-11-16T10:00"), a.id)
    event = t.events[-1]
    assert (event.actor, event.role, event.action, event.rule) == (
        "u-wh",
        "unit_handler",
        "sign",
        "D-3",
    )
    assert (event.before, event.after, event.at) == ("assigned", "signed", at("2026-11-16T10:00"))
    assert [e.seq for e in t.events] == list(range(1, len(t.events) + 1))
    count = len(t.events)
    error(t.sign, world.ctx(WATER_HANDLER), a.id)  # already signed
    assert len(t.events) == count


def test_illegal_transitions_name_the_rule_of_the_action(world: World) -> None:
    t = world.register()
    e = error(t.callback, world.ctx(AGENT), CallbackResult.SATISFIED)
    assert (e.code, e.rule) == ("illegal_transition", "B-1")
    t.reject(world.ctx(AGENT), RejectReason.TOO_VAGUE, "已解释")
    e = error(t.assign, world.ctx(DISPATCHER), ["water"])
    assert (e.code, e.rule) == ("illegal_transition", "D-1")


def test_every_action_of_the_transition_table_names_a_rule_of_the_book() -> None:
    import re

    assert all(re.fullmatch(r"[CIDHTBPYKES]-[1-7]", tr.rule) for tr in TRANSITIONS.values())


# -- C-1, T-3, H-6, B-3, P-2 ------------------------------------------------------------------
def test_requests_are_taken_around_the_clock_and_on_holidays() -> None:
    # rule C-1: registered at 03:00 on National Day; the office's clock starts on Oct 8
    world = World("2026-10-03T03:00")
    t = world.register()
    assert t.state is T.REGISTERED and t.registered_at == at("2026-10-03T03:00")
    assert t.assign_deadline.due == at("2026-10-08T10:30")  # rules C-2, C-3, D-1


def test_other_matters_go_internal_at_the_offices_discretion(world: World) -> None:
    # rule T-3
    t = world.register(content="反映的情况与事实可能出入较大")
    t.transfer_internal(
        world.ctx(SUPERVISOR), InternalCategory.OTHER, "roads", "市住建局", "0510-2222"
    )
    assert t.state is T.INTERNAL and not t.internal.filing_copy_to_discipline  # type: ignore[union-attr]


def test_a_utility_emergency_records_its_three_way_call_and_is_called_back_by_phone(
    world: World,
) -> None:
    # rules H-6, B-3
    t = world.register(utility="gas", content="燃气泄漏")
    assert t.events[-1].action == "three_way_call" and t.events[-1].rule == "H-6"
    to_callback(world, t)
    e = error(t.callback, world.ctx(AGENT), CallbackResult.SATISFIED, "", "self_evaluation")
    assert (e.code, e.rule) == ("phone_callback_required", "B-3")
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED, "", "phone")
    assert t.state is T.CLOSED and t.callbacks[-1].method == "phone"


def test_self_evaluation_through_the_original_channel_counts_as_a_callback(world: World) -> None:
    # rule B-1
    t = world.register(channel=Channel.WECHAT)
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.NO_OBJECTION, "", "self_evaluation")
    assert t.state is T.CLOSED
    assert error(t.decide_publication, world.ctx(AGENT), agree_with_unit=True).code == (
        "no_unit_proposal"
    )


def test_an_unknown_utility_is_refused(world: World) -> None:
    assert error(world.register, utility="oil").code == "unknown_utility"  # rule H-6


# -- multi-unit returns, leads, and the calendar running out -----------------------------------
def test_a_justified_return_while_another_unit_holds_it_names_who_takes_it_over(
    world: World,
) -> None:
    # rules D-4, D-5: the returned part is never dropped
    t = world.register()
    assigned(world, t, ["water", "roads"], "roads")
    replied(world, t, "water")
    t.review(world.ctx(REVIEWER), t.assignment_for("water").id, True)  # type: ignore[union-attr]
    roads = t.assignment_for("roads")
    assert roads is not None
    t.request_return(world.ctx(ROADS_HANDLER), roads.id, "非道路问题", "权责清单", "city")
    e = error(t.decide_return, world.ctx(DISPATCHER), roads.id, True, "理由充分")
    assert (e.code, e.rule) == ("reassignment_required", "D-4")
    assert roads.state is A.RETURN_REQUESTED  # nothing changed
    t.decide_return(world.ctx(DISPATCHER), roads.id, True, "理由充分", reassign_to=["city"])
    city = t.assignment_for("city")
    assert city is not None and city.lead  # the lead moved with the returned part
    assert t.state is T.ASSIGNED


def test_the_last_open_part_returned_and_reassigned_after_the_others_replied(
    world: World,
) -> None:
    # rules D-4, B-1: the ticket reaches the callback with a deadline to meet
    t = world.register()
    assigned(world, t, ["water", "roads"], "water")
    replied(world, t, "water")
    assert t.state is T.ASSIGNED
    roads = t.assignment_for("roads")
    assert roads is not None
    t.request_return(world.ctx(ROADS_HANDLER), roads.id, "非道路问题", "权责清单", "water")
    t.decide_return(world.ctx(DISPATCHER), roads.id, True, "理由充分", reassign_to=["city"])
    city = t.assignment_for("city")
    assert city is not None
    t.sign(world.ctx(Actor("u-ch", Role.UNIT_HANDLER, "city")), city.id)
    t.draft_reply(
        world.ctx(Actor("u-ch", Role.UNIT_HANDLER, "city")),
        city.id,
        "已由城管部门处理完毕，路面已清理。",
    )
    t.approve_reply(world.ctx(Actor("u-cl", Role.UNIT_LEADER, "city")), city.id, True)
    for a in t.live_assignments():
        t.review(world.ctx(REVIEWER), a.id, True)
    assert t.state is T.CALLBACK and t.callback_deadline is not None
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED)
    assert t.state is T.CLOSED


def test_a_refused_return_stays_refused_after_re_handling(world: World) -> None:
    # rule D-4: "may not return it again" holds for the ticket, not for one assignment
    t = world.register()
    assigned(world, t, ["water"])
    a = t.assignments[0]
    t.request_return(world.ctx(WATER_HANDLER), a.id, "不归我们管", "依据", "roads")
    t.decide_return(world.ctx(DISPATCHER), a.id, False, "不充分")
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.UNSATISFIED)
    t.rehandle(world.ctx(REVIEWER))
    again = t.live_assignments()[0]
    assert again is not a
    e = error(t.request_return, world.ctx(WATER_HANDLER), again.id, "还是不归我们", "依据", "roads")
    assert (e.code, e.rule) == ("second_return_refused", "D-4")


def test_a_ticket_has_one_lead_at_most(world: World) -> None:
    t = world.register()
    assigned(world, t, ["water", "roads"], "water")
    e = error(t.assign, world.ctx(DISPATCHER), ["city"], "city")
    assert (e.code, e.rule) == ("lead_exists", "D-5")


def test_when_the_calendar_runs_out_requests_are_still_taken_and_assigned() -> None:
    # rules C-1, C-2: 5 working days from Dec 28 reach into 2027, which the library lacks;
    # the deadline is unknown and on record — never a weekday guess, never a refusal
    world = World("2026-12-28T10:00")
    t = world.register()
    assert t.assign_deadline.due is not None
    t.assign(world.ctx(DISPATCHER), ["water"])
    a = t.assignments[0]
    assert a.sign.due is not None and a.handle.due is None and a.handle.late is None
    t.sign(world.ctx(WATER_HANDLER), a.id)
    e = error(t.request_extension, world.ctx(WATER_LEADER), a.id, "原因", 1, "进展", "安排")
    assert (e.code, e.rule) == ("deadline_unknown", "C-2")
    late = World("2026-12-31T17:00").register()  # 2 working hours reach into 2027
    assert late.state is T.REGISTERED and late.assign_deadline.due is None


def test_re_handling_the_same_unit_twice_is_refused(world: World) -> None:
    t = world.register()
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.UNSATISFIED)
    e = error(t.rehandle, world.ctx(REVIEWER), ["water", "water"])
    assert e.code == "units_required" and t.state is T.DISSATISFIED


def test_a_send_back_without_a_note_changes_nothing(world: World) -> None:
    t = world.register()
    assigned(world, t, ["water"])
    replied(world, t, "water")
    a = t.assignments[0]
    error(t.review, world.ctx(REVIEWER), a.id, False, " ")
    assert (a.state, a.review_note, a.sent_back) == (A.REPLIED, "", 0)
