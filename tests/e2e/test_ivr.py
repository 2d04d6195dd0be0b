"""The 24-hour IVR on real calls: SIPp keys in the lab, what Asterisk did, what was stored."""

from __future__ import annotations

import io
import random
import time
import wave
from collections.abc import Callable

import pytest

from hotline.ivr.fallback import fallback_key, parse
from hotline.lab.calls import observe_call
from hotline.lab.instance import Lab
from hotline.lab.sipp import CallPlan
from tests.e2e.conftest import LabBackend, journal_rows

pytestmark = pytest.mark.e2e


def caller() -> str:
    return "137" + "".join(random.choice("0123456789") for _ in range(8))


def mine(name: str, key: str, number: str) -> bool:
    """Is this safe-path recording on the switch the message of ``number``?"""
    message = parse(name, key)
    return message is not None and message.caller == number


def office(b: LabBackend) -> dict[str, str]:
    """Units with their people, and the office's users; tokens by role."""
    b.cli("units", "add", "--id", "water", "--name", "市水务局", "--contact", "0510-86001234")
    tokens = {role: b.user(role, role) for role in ("agent", "dispatcher", "supervisor")}
    tokens["water_handler"] = b.user("水务经办", "unit_handler", "water")
    tokens["water_leader"] = b.user("水务领导", "unit_leader", "water")
    return tokens


def message_audio(b: LabBackend, token: str, ref: str, name: str) -> tuple[int, float]:
    """A voice message as the office downloads it: (sample rate, seconds). The backend copies
    it from Asterisk over ARI after the call, so it may take a moment to be there."""
    audio = None
    for _ in range(40):
        try:
            audio = b.api(token, "GET", f"/api/v1/tickets/{ref}/recordings/{name}")
            break
        except Exception:
            time.sleep(0.5)
    assert isinstance(audio, bytes), "the recording never reached the backend"
    with wave.open(io.BytesIO(audio)) as w:
        return w.getframerate(), w.getnframes() / w.getframerate()


def open_ticket(b: LabBackend, tokens: dict[str, str], phone: str) -> dict[str, str]:
    t = b.api(
        tokens["agent"],
        "POST",
        "/api/v1/tickets",
        {"type": "help", "channel": "phone", "content": "小区停水", "citizen_phone": phone},
    )
    return b.api(
        tokens["dispatcher"],
        "POST",
        f"/api/v1/tickets/{t['id']}/actions/assign",
        {"version": t["version"], "units": ["water"]},
    )  # type: ignore[no-any-return]


async def test_a_utility_emergency_is_handed_on_at_top_priority(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    # rule H-6: 5 = water/power/gas repairs, 2 = power
    backend().agent_on_duty()
    plan = CallPlan(caller=caller(), dtmf="52")
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    (handoff,) = seen.user_events("HotlineHandoff")
    assert (handoff["Route"], handoff["CallPriority"], handoff["Utility"]) == (
        "utility",
        "9",
        "power",
    )
    assert handoff["Path"] == "menu:5>utility:power"
    # 5 cut the welcome short, never the notice (rule I-6): 2 came during the notice, was
    # kept, and the notice went on from where it stopped; so the sub-menu was not needed
    assert seen.played()[:2] == ["hotline/welcome", "hotline/emergency_notice"]
    notice = [c.split() for c in seen.agi if c.startswith("STREAM FILE hotline/emergency_notice")]
    assert notice[0][-1] == "0" and int(notice[1][-1]) > 0  # resumed
    assert "hotline/utility_menu" not in seen.played()


async def test_ticket_progress_tells_state_unit_and_due_date_of_a_keyed_number(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    b = backend()
    tokens = office(b)
    ticket = open_ticket(b, tokens, "13900000000")
    b.cli("prompts", "build", "--lab")  # the unit's name becomes a prompt in the lab
    keys = "6" + ticket["number"].replace("-", "") + "#"
    plan = CallPlan(caller=caller(), dtmf=keys, hold_ms=30000)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    played = seen.played()
    start = played.index("hotline/progress_intro")
    digits = [f"hotline/digit_{d}" for d in ticket["number"].replace("-", "")]
    assert played[start + 1 : start + 1 + len(digits)] == digits
    assert "hotline/state_assigned" in played and "hotline/unit_water" in played
    assert "hotline/progress_due" in played
    (row,) = await journal_rows(database, plan.caller)
    assert "progress:number" in row["steps"] and "progress:told" in row["steps"]


async def test_a_voice_message_becomes_a_ticket_with_a_playable_recording(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    b = backend()  # nobody logged in: the caller is offered a message
    tokens = office(b)
    # the key cuts the welcome short; then the notice (I-6, 7.8 s) and the voice-message
    # prompt play; 7 s of speech just after the beep, then the caller hangs up
    plan = CallPlan(caller=caller(), dtmf="1", speak_after_ms=17300, hold_ms=10000)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    assert any(c.startswith("RECORD FILE") for c in seen.agi)
    (row,) = await journal_rows(database, plan.caller)
    assert "no_agents" in row["steps"] and "voicemail:ticket" in row["steps"]
    assert row["outcome"] == "hangup"  # and the message kept all the same

    tasks = b.api(tokens["supervisor"], "GET", "/api/v1/tasks")["tasks"]
    (task,) = [t for t in tasks if t["kind"] == "voicemail_callback"]
    ticket = b.api(tokens["supervisor"], "GET", f"/api/v1/tickets/{task['ticket']}")
    assert ticket["channel"] == "phone" and ticket["citizen"]["phone"] == plan.caller
    (name,) = ticket["recordings"]
    rate, seconds = message_audio(b, tokens["supervisor"], task["ticket"], name)
    assert rate == 8000 and seconds > 6  # the caller's 7 s of speech
    # the caller's number stays private for the units (rule Y-1)
    assert plan.caller not in str(b.api(tokens["water_handler"], "GET", "/api/v1/tickets"))


async def test_wrong_keys_three_times_go_to_the_operator(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    backend().agent_on_duty()
    # each wrong key while the menu plays (after the welcome and the notice, 13.3 s);
    # each is answered by the "invalid" prompt (3.7 s), then the menu again
    plan = CallPlan(caller=caller(), dtmf="999", answer_wait_ms=15000, gap_ms=5000, hold_ms=3000)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    (handoff,) = seen.user_events("HotlineHandoff")
    assert handoff["Route"] == "operator"
    assert ("hotline-fallback", "Dial", "PJSIP/operator,20") in seen.dialplan
    (row,) = await journal_rows(database, plan.caller)
    assert row["digits"] == "999" and "attempts_exhausted" in row["steps"]


async def test_a_hang_up_mid_menu_ends_the_call_cleanly(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    b = backend()
    plan = CallPlan(caller=caller(), dtmf="", answer_wait_ms=500, hold_ms=1500)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    (row,) = await journal_rows(database, plan.caller)
    assert (row["outcome"], row["steps"]) == ("hangup", "answer")  # gone during the welcome
    assert not seen.user_events("HotlineHandoff") and not seen.user_events("HotlineFallback")
    assert "Traceback" not in b.output()


async def test_a_repeat_caller_carries_its_ticket_to_the_agent(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    b = backend()
    tokens = office(b)
    number = caller()
    ticket = open_ticket(b, tokens, number)
    b.agent_on_duty()
    seen = await observe_call(lab, CallPlan(caller=number, dtmf="1"))
    assert seen.call.ok, seen.call.output
    (handoff,) = seen.user_events("HotlineHandoff")
    assert (handoff["Type"], handoff["Ticket"]) == ("consultation", ticket["number"])


async def test_the_same_ivr_over_ari(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    # 12346 broadcasts the call to the backend nodes' Stasis applications instead of FastAGI
    b = backend()
    b.agent_on_duty()
    plan = CallPlan(number="12346", caller=caller(), dtmf="52")
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    (handoff,) = seen.user_events("HotlineHandoff")
    assert (handoff["Route"], handoff["CallPriority"], handoff["Utility"]) == (
        "utility",
        "9",
        "power",
    )
    assert ("citizen-inbound", "StasisBroadcast", "2000,^hotline-") in seen.dialplan
    (row,) = await journal_rows(database, plan.caller)
    assert (row["script"], row["route"], row["outcome"]) == ("ari", "utility", "routed")


async def test_a_voice_message_over_ari_is_recorded_and_fetched(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    b = backend()
    tokens = office(b)
    plan = CallPlan(number="12346", caller=caller(), dtmf="7", speak_after_ms=17300, hold_ms=10000)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    (row,) = await journal_rows(database, plan.caller)
    assert row["script"] == "ari" and "voicemail:ticket" in row["steps"]
    (task,) = b.api(tokens["supervisor"], "GET", "/api/v1/tasks")["tasks"]
    ticket = b.api(tokens["supervisor"], "GET", f"/api/v1/tickets/{task['ticket']}")
    (name,) = ticket["recordings"]
    _, seconds = message_audio(b, tokens["supervisor"], task["ticket"], name)
    assert seconds > 6


async def test_a_message_left_while_the_backend_was_down_becomes_a_ticket_when_it_is_back(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    # Nothing is lost: with the backend unreachable the dialplan's safe path plays the fallback
    # prompt (5.7 s), rings the operator (20 s), plays the voice-message prompt (8.9 s) and
    # records; the caller speaks 7 s after the beep.
    plan = CallPlan(caller=caller(), dtmf="", speak_after_ms=35000, hold_ms=10000)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    assert seen.user_events("HotlineFallback") and seen.user_events("HotlineVoicemail")
    spool = lab.home / "spool" / "recording"
    key = fallback_key(lab.credentials().ari_password)
    (left,) = [p for p in spool.glob("hotline-fb-*.wav") if mine(p.stem, key, plan.caller)]
    assert plan.caller not in left.name  # the number is sealed (rule Y-1) ...
    assert plan.caller not in lab.log_file.read_text()  # ... and not in Asterisk's log

    b = backend()  # the backend is back: it sweeps the switch at start
    tokens = office(b)
    tasks: list[dict[str, object]] = []
    for _ in range(40):
        tasks = b.api(tokens["supervisor"], "GET", "/api/v1/tasks")["tasks"]
        if tasks:
            break
        time.sleep(0.5)
    (task,) = [t for t in tasks if t["kind"] == "voicemail_callback"]
    ticket = b.api(tokens["supervisor"], "GET", f"/api/v1/tickets/{task['ticket']}")
    assert ticket["channel"] == "phone" and ticket["citizen"]["phone"] == plan.caller
    (name,) = ticket["recordings"]
    assert plan.caller not in name  # rule Y-1: the number stays out of the recording's name
    _, seconds = message_audio(b, tokens["supervisor"], str(task["ticket"]), name)
    assert seconds > 6  # the caller's 7 s of speech
    assert not left.exists()  # taken off the switch once it was a ticket
    assert plan.caller not in b.output()  # never logged in clear (Y-1)
