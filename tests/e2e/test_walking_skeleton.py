"""Real calls into 12345 in the lab: SIPp -> Asterisk 22 -> FastAGI backend -> dialplan."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from hotline.lab.calls import observe_call
from hotline.lab.instance import Lab
from hotline.lab.sipp import CallPlan
from tests.backend import hotline
from tests.e2e.conftest import LabBackend, journal_rows

pytestmark = pytest.mark.e2e


def caller() -> str:
    return "139" + "".join(random.choice("0123456789") for _ in range(8))


async def test_dtmf_1_reaches_the_backend_and_asterisk_routes_on_its_variable(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    backend().agent_on_duty()
    plan = CallPlan(caller=caller(), dtmf="1")
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output

    # The backend saw the call: caller number, script, the digit, where it sent the call.
    (row,) = await journal_rows(database, plan.caller)
    assert (row["caller"], row["script"], row["digits"], row["route"], row["outcome"]) == (
        plan.caller,
        "ivr",
        "1",
        "queue:consultation",
        "routed",
    )
    # Asterisk acted on the variables: the dialplan went to the queue's hand-off point.
    (handoff,) = seen.user_events("HotlineHandoff")
    assert (handoff["Route"], handoff["Type"], handoff["Path"]) == (
        "queue",
        "consultation",
        "menu:1",
    )
    assert handoff["Uniqueid"] == row["call_id"]  # the same call on both sides
    assert not seen.user_events("HotlineFallback")
    assert ("hotline-route", "Goto", "hotline-queue,s,1") in seen.dialplan


async def test_with_the_backend_stopped_the_caller_reaches_the_fallback_path(lab: Lab) -> None:
    # Long enough to hear the fallback prompt through and be put through to the operator.
    plan = CallPlan(caller=caller(), dtmf="1", hold_ms=8000)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output  # answered, never dead air
    (fallback,) = seen.user_events("HotlineFallback")
    assert fallback["Status"] == "FAILURE"  # Asterisk could not reach the backend
    assert not seen.user_events("HotlineHandoff")
    assert ("hotline-fallback", "Playback", "hotline/fallback") in seen.dialplan
    assert ("hotline-fallback", "Dial", "PJSIP/operator,20") in seen.dialplan


def test_lab_call_command_reports_what_asterisk_did(
    lab: Lab, lab_env: dict[str, str], backend: Callable[..., LabBackend]
) -> None:
    backend().agent_on_duty()
    status = hotline("lab", "status", env=lab_env)
    assert status.returncode == 0 and "Asterisk 22" in status.stdout
    out = hotline("lab", "call", "12345", "--dtmf", "2", "--caller", caller(), env=lab_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SIPp: call succeeded" in out.stdout
    assert "HotlineHandoff {'Route': 'queue', 'Type': 'help', 'CallPriority': '0'" in out.stdout


async def test_a_caller_copes_when_asterisk_hangs_up_first(lab: Lab) -> None:
    # the lab's 12300 answers and hangs up at once: the BYE arrives while keys are being sent
    seen = await observe_call(lab, CallPlan(number="12300", caller=caller(), dtmf="12"))
    assert seen.call.ok, seen.call.output
    assert ("citizen-inbound", "Hangup", "") in seen.dialplan
