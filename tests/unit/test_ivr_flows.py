"""Every branch of the IVR flows, driven by the scripted caller (no Asterisk here)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from hotline.config.settings import DEFAULT_MENU, DEFAULT_UTILITY_MENU
from hotline.errors import CallerHungUp, DatabaseUnavailable
from hotline.ivr import flows
from hotline.ivr.fake import HangUp, Press, ScriptedCall, Silence, Speak, Type
from hotline.ivr.flows import IvrConfig, TicketInfo
from hotline.ivr.journal import CallRecord
from hotline.ivr.port import Handoff, Recording, prompt

NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
CFG = IvrConfig(
    DEFAULT_MENU,
    DEFAULT_UTILITY_MENU,
    timeout_ms=5000,
    attempts=3,
    max_wait_seconds=120,
    record_max_seconds=60,
    repeat_days=30,
)
OPEN = TicketInfo(
    "20261120-0042", "assigned", "water", dt.datetime(2026, 12, 4, 17, 30, tzinfo=dt.UTC)
)


class FakeServices:
    def __init__(self, agents: int = 2, wait: float = 10.0) -> None:
        self.tickets: dict[str, TicketInfo] = {OPEN.number: OPEN}
        self.by_phone: dict[str, list[TicketInfo]] = {}
        self.agents, self.wait = agents, wait
        self.messages: list[tuple[str, str, float, str]] = []
        self.discarded: list[str] = []
        self.fail: Exception | None = None

    async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]:
        return self.by_phone.get(phone, [])

    async def ticket(self, number: str) -> TicketInfo | None:
        return self.tickets.get(number)

    async def agents_available(self) -> int:
        if self.fail:
            raise self.fail
        return self.agents

    async def estimated_wait(self, priority: int) -> float:
        return self.wait

    def message_name(self, call: CallRecord, request_type: str) -> str:
        return "hotline-vm-" + call.call_id.replace(".", "-")

    def discard_message(self, recording: Recording) -> None:
        self.discarded.append(recording.name)

    async def voice_message(self, call: CallRecord, recording: Recording, request_type: str) -> str:
        self.messages.append((call.caller, recording.name, recording.seconds, request_type))
        return "20261127-0099"


async def run(
    script: list, svc: FakeServices | None = None, **call_kw: object
) -> tuple[Handoff, ScriptedCall, CallRecord, FakeServices]:
    svc = svc or FakeServices()
    ch = ScriptedCall(list(script), **call_kw)  # type: ignore[arg-type]
    call = CallRecord("1700000000.1", "ivr", ch.caller, "PJSIP/x", NOW)
    handoff = await flows.inbound(ch, CFG, svc, call, NOW)
    assert ch.handoff == handoff  # handed over exactly once, with what the flow decided
    return handoff, ch, call, svc


@pytest.mark.parametrize(
    "key,kind", [("1", "consultation"), ("2", "help"), ("3", "complaint"), ("4", "suggestion")]
)
async def test_a_request_type_goes_to_the_queue_with_its_type_and_path(key: str, kind: str) -> None:
    handoff, ch, call, _ = await run([Press(key)])
    assert (handoff.route, handoff.type, handoff.priority) == ("queue", kind, 0)
    assert handoff.path == f"menu:{key}"
    assert ch.played()[:2] == [prompt("welcome"), prompt("emergency_notice")]  # rule I-6
    assert call.route == f"queue:{kind}"


async def test_a_key_after_the_welcome_is_read_by_the_menu() -> None:
    handoff, ch, _call, _ = await run([Silence(), Type("3")])
    assert (handoff.route, handoff.type) == ("queue", "complaint")
    assert ("collect", [prompt("menu")]) in ch.log


async def test_a_wrong_key_is_explained_and_the_menu_repeats() -> None:
    handoff, ch, call, _ = await run([Silence(), Type("9"), Type("2")])
    assert handoff.type == "help"
    assert prompt("invalid") in ch.played() and call.digits == "92"


async def test_three_misses_go_to_the_operator() -> None:
    handoff, _, call, _ = await run([Silence(), Type("9"), Silence(), Type("8")])
    assert handoff.route == "operator"
    assert "attempts_exhausted" in call.steps


async def test_a_utility_emergency_goes_first_with_its_utility() -> None:
    # rule H-6
    handoff, ch, _, _ = await run([Press("5"), Type("2")])
    assert (handoff.route, handoff.priority, handoff.utility) == ("utility", 9, "power")
    assert handoff.path == "menu:5>utility:power"
    assert ("collect", [prompt("utility_menu")]) in ch.log


async def test_no_utility_chosen_goes_to_the_operator() -> None:
    handoff, _, _, _ = await run([Press("5"), Silence(), Type("7"), Silence()])
    assert handoff.route == "operator"


async def test_progress_of_a_keyed_ticket_number_without_identity() -> None:
    handoff, ch, call, _ = await run([Press("6"), Type("202611200042#"), Silence(), Type("0")])
    played = ch.played()
    number_clips = [prompt(f"digit_{d}") for d in "202611200042"]
    start = played.index(prompt("progress_intro"))
    assert played[start + 1 : start + 13] == number_clips
    assert prompt("state_assigned") in played and prompt("unit_water") in played
    assert [
        prompt("progress_due"),
        prompt("n_12"),
        prompt("month"),
        prompt("n_5"),
        prompt("day"),
    ] == played[played.index(prompt("progress_due")) :][:5]  # Dec 5, CST
    assert "progress:number" in call.steps and handoff.route == "operator"  # menu, then 0


async def test_progress_of_the_callers_own_tickets() -> None:
    svc = FakeServices()
    svc.by_phone["13800138000"] = [OPEN]
    _, ch, call, _ = await run([Press("6"), Type("#"), Silence(), Type("1")], svc)
    assert "progress:own" in call.steps and prompt("state_assigned") in ch.played()


class DownServices(FakeServices):
    async def ticket(self, number: str) -> TicketInfo | None:
        raise DatabaseUnavailable("ticket by number: no answer within 2 s")

    async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]:
        raise DatabaseUnavailable("open tickets: the database is down")


@pytest.mark.parametrize("keyed", ["202611200042#", "#"])
async def test_progress_the_backend_cannot_tell_is_said_and_a_person_takes_over(
    keyed: str,
) -> None:
    handoff, ch, call, _ = await run([Press("6"), Type(keyed)], DownServices())
    assert prompt("progress_unavailable") in ch.played()  # told, not left in silence
    assert "progress:unavailable" in call.steps
    assert (handoff.route, handoff.type) == ("queue", "consultation")  # no error flag
    assert prompt("progress_none") not in ch.played()  # never a guess


async def test_progress_when_nothing_is_found() -> None:
    handoff, ch, call, _ = await run([Press("6"), Type("209901010001#"), Silence(), Type("1")])
    assert prompt("progress_none") in ch.played() and "progress:none" in call.steps
    assert handoff.type == "consultation"  # and back through the menu


async def test_progress_goes_on_when_a_units_prompt_is_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, ch, call, _ = await run(
        [Press("6"), Type("202611200042#"), Silence(), Type("1")],
        missing_prompts={prompt("unit_water")},
    )
    assert prompt("progress_due") in ch.played() and "progress:told" in call.steps
    assert "no prompt for unit water" in caplog.text


async def test_a_voice_message_becomes_a_ticket() -> None:
    handoff, ch, call, svc = await run([Press("7"), Speak(12)])
    assert svc.messages == [("13800138000", "hotline-vm-1700000000-1", 12, "help")]
    assert (handoff.route, handoff.ticket) == ("hangup", "20261127-0099")
    assert prompt("voicemail_saved") in ch.played()
    assert call.steps[-3:] == ["recorded", "voicemail:ticket", "handoff:hangup"]


async def test_no_agent_logged_in_takes_a_message_for_the_chosen_type() -> None:
    handoff, _, call, svc = await run([Press("3"), Speak(8)], FakeServices(agents=0))
    assert svc.messages[0][3] == "complaint" and "no_agents" in call.steps
    assert handoff.route == "hangup"


async def test_a_long_wait_offers_a_message() -> None:
    _, _, call, svc = await run([Press("1"), Speak(5)], FakeServices(wait=600))
    assert "long_wait" in call.steps and len(svc.messages) == 1


async def test_a_silent_message_makes_no_ticket_and_promises_no_call_back() -> None:
    handoff, ch, call, svc = await run([Press("7"), Silence()])
    assert svc.messages == [] and handoff.route == "hangup" and handoff.ticket == ""
    assert svc.discarded == ["hotline-vm-1700000000-1"]  # off the switch: no sweep makes it one
    assert prompt("voicemail_empty") in ch.played()
    assert prompt("voicemail_saved") not in ch.played() and "voicemail:empty" in call.steps


async def test_a_message_under_a_second_of_speech_is_no_message() -> None:
    _, _, _, svc = await run([Press("7"), Speak(0.5)])
    assert svc.messages == []


async def test_hanging_up_after_speaking_keeps_the_message() -> None:
    svc = FakeServices()
    with pytest.raises(CallerHungUp):
        await run([Press("7"), Speak(6, ended_by="hangup")], svc)
    assert svc.messages == [("13800138000", "hotline-vm-1700000000-1", 6, "help")]


class PendingServices(FakeServices):
    async def voice_message(self, call: CallRecord, recording: Recording, request_type: str) -> str:
        await super().voice_message(call, recording, request_type)
        return ""  # the database is down: the message stays on the switch for the sweeper


async def test_a_message_still_being_registered_is_thanked_for_without_a_ticket() -> None:
    handoff, ch, call, _ = await run([Press("7"), Speak(9)], PendingServices())
    assert handoff.ticket == "" and "voicemail:pending" in call.steps
    assert prompt("voicemail_saved") in ch.played()


async def test_the_notice_is_heard_in_full_even_when_a_key_cuts_the_welcome() -> None:
    # rule I-6: the 110/119/120 notice is for every caller; the key is acted on after it
    handoff, ch, call, _ = await run([Press("2")])
    assert ch.played() == [prompt("welcome"), prompt("emergency_notice"), prompt("transfer")]
    plays = [(op, v) for op, v in ch.log if op == "play"]
    assert plays[1] == ("play", [prompt("emergency_notice")])
    assert handoff.type == "help" and call.steps[:3] == ["answer", "welcome", "notice"]


async def test_a_lookup_still_running_after_the_notice_holds_the_caller_only_briefly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a starved database must not keep a caller in silence after the notice
    monkeypatch.setattr(flows, "LOOKUP_GRACE_SECONDS", 0.05)
    gave_up = asyncio.Event()

    class Stuck(FakeServices):
        async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]:
            try:
                await asyncio.sleep(3600)
            finally:
                gave_up.set()
            return await super().open_tickets(phone, since)

    svc = Stuck()
    svc.by_phone["13800138000"] = [OPEN]  # an open ticket, but it is not found in time
    handoff, ch, call, _ = await asyncio.wait_for(run([Silence(), Type("1")], svc), 5)
    assert (handoff.route, handoff.type, handoff.ticket) == ("queue", "consultation", "")
    assert "lookup_slow" in call.steps and "repeat_caller" not in call.steps
    assert prompt("repeat_offer") not in ch.played() and gave_up.is_set()


async def test_a_failed_repeat_caller_lookup_does_not_cost_the_caller_the_menu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(FakeServices):
        async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]:
            raise ConnectionError("database unreachable")

    handoff, _, call, _ = await run([Press("1")], Broken())
    assert (handoff.route, handoff.type, handoff.ticket) == ("queue", "consultation", "")
    assert "lookup_failed" in call.steps and "13800138000" not in caplog.text


async def test_a_withheld_number_is_never_looked_up() -> None:
    class Counting(FakeServices):
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[str] = []

        async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]:
            self.asked.append(phone)
            return [OPEN]

    svc = Counting()
    handoff, _, _, _ = await run([Press("1")], svc, caller_number="")
    assert svc.asked == [] and handoff.ticket == ""


async def test_a_repeat_caller_hears_its_ticket_first_and_carries_it_to_the_agent() -> None:
    svc = FakeServices()
    svc.by_phone["13800138000"] = [OPEN]
    handoff, ch, call, _ = await run([Silence(), Type("1"), Silence(), Type("2")], svc)
    assert "repeat_caller" in call.steps and prompt("state_assigned") in ch.played()
    assert (handoff.type, handoff.ticket) == ("help", OPEN.number)


async def test_a_repeat_caller_who_knows_what_to_press_still_carries_the_ticket() -> None:
    svc = FakeServices()
    svc.by_phone["13800138000"] = [OPEN]
    handoff, _, call, _ = await run([Press("1")], svc)
    assert handoff.ticket == OPEN.number and "repeat_caller" not in call.steps


class SlowLookup(FakeServices):
    """The repeat-caller lookup waits until the caller has heard something."""

    def __init__(self, ch: list[ScriptedCall]) -> None:
        super().__init__()
        self.by_phone["13800138000"] = [OPEN]
        self.ch, self.cancelled, self.heard_first = ch, False, False

    async def open_tickets(self, phone: str, since: dt.datetime) -> list[TicketInfo]:
        try:
            while not self.ch[0].played():
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.heard_first = True
        return await super().open_tickets(phone, since)


async def test_the_welcome_starts_while_the_repeat_caller_lookup_runs() -> None:
    # a key pressed before the first prompt starts would be lost: nothing may delay the welcome
    holder: list[ScriptedCall] = []
    svc = SlowLookup(holder)
    ch = ScriptedCall([Press("1")])
    holder.append(ch)
    call = CallRecord("1700000000.1", "ivr", ch.caller, "PJSIP/x", NOW)
    handoff = await asyncio.wait_for(flows.inbound(ch, CFG, svc, call, NOW), 5)
    assert svc.heard_first and handoff.ticket == OPEN.number  # the lookup still counts


async def test_a_hang_up_during_the_welcome_cancels_the_lookup() -> None:
    svc = FakeServices()

    async def never(phone: str, since: dt.datetime) -> list[TicketInfo]:
        await asyncio.Event().wait()
        return []

    svc.open_tickets = never  # type: ignore[method-assign]
    ch = ScriptedCall([HangUp()])
    call = CallRecord("1700000000.1", "ivr", ch.caller, "PJSIP/x", NOW)
    with pytest.raises(CallerHungUp):
        await asyncio.wait_for(flows.inbound(ch, CFG, svc, call, NOW), 5)
    assert call.steps == ["answer"]
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


REACHED = ["answer", "welcome", "menu:6", "progress:number", "progress:told"]


@pytest.mark.parametrize("cut", range(0, 5))
async def test_a_hang_up_at_each_step_ends_cleanly_and_says_how_far(cut: int) -> None:
    full = [Silence(), Type("6"), Type("202611200042#"), Silence()]
    ch = ScriptedCall([*full[:cut], HangUp()])
    call = CallRecord("c", "ivr", ch.caller, "x", NOW)
    with pytest.raises(CallerHungUp):
        await flows.inbound(ch, CFG, FakeServices(), call, NOW)
    assert ch.handoff is None  # nothing handed on for a caller who is gone
    assert [s for s in call.steps if s in REACHED] == REACHED[: cut + 1]


async def test_a_failing_flow_sends_the_caller_to_the_operator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = FakeServices()
    svc.fail = RuntimeError("presence store down")
    with caplog.at_level(logging.ERROR):
        handoff, _, call, _ = await run([Press("1")], svc)
    assert handoff.route == "operator" and handoff.extra == {"ivr_error": "1"}
    assert "1700000000.1" in caplog.text and call.error == "flow failed"


async def test_a_wrong_key_during_the_welcome_is_the_first_of_the_tries() -> None:
    handoff, ch, call, _ = await run([Press("9"), Type("9"), Type("9")])
    assert handoff.route == "operator" and call.digits == "999"
    assert ch.played().count(prompt("invalid")) == 2  # after the 1st and 2nd; the 3rd ends it
