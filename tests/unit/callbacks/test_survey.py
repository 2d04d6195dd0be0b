"""The survey flow over the CallChannel port (rule B-1), with a scripted citizen."""

from __future__ import annotations

import pytest

from hotline.callbacks.survey import Answer, survey
from hotline.ivr.fake import HangUp, Press, ScriptedCall, Silence, Speak

NUMBER = "20261203000042"


async def run(*steps: object, ticket_type: str = "complaint") -> tuple[Answer, ScriptedCall]:
    call = ScriptedCall(list(steps))  # type: ignore[arg-type]
    answer = await survey(call, NUMBER, ticket_type, "survey-x-1")
    return answer, call


@pytest.mark.parametrize(
    ("key", "result"),
    [("1", "satisfied"), ("2", "basically_satisfied")],
)
async def test_a_key_is_the_answer_and_the_call_ends_with_thanks(key: str, result: str) -> None:
    answer, call = await run(Silence(), Press(key))  # heard the intro, then keyed
    assert answer == Answer("answered", result)
    played = call.played()
    assert played[:2] == ["hotline/survey_intro", "hotline/survey_ticket"]
    assert "hotline/digit_4" in played and "hotline/survey_type_complaint" in played
    assert played[-1] == "hotline/survey_thanks"
    assert ("record", "survey-x-1") not in call.log
    assert call.log[-1][0] == "hangup"


async def test_the_call_names_the_ticket_never_the_person() -> None:  # rule Y-1
    _, call = await run(Silence(), Press("1"))
    digits = [p.removeprefix("hotline/digit_") for p in call.played() if "digit_" in p]
    assert "".join(digits) == NUMBER  # the ticket's number, digit by digit, and no other
    assert call.caller_number not in "".join(digits)  # the citizen's number is not read out


async def test_unsatisfied_asks_for_the_reason_and_keeps_the_recording() -> None:
    answer, call = await run(Press("3"), Speak(6.0))
    assert answer == Answer("answered", "unsatisfied", "survey-x-1")
    assert "hotline/survey_reason" in call.played()
    assert call.played()[-1] == "hotline/survey_thanks"


async def test_unsatisfied_with_nothing_said_keeps_no_recording() -> None:
    answer, _ = await run(Press("3"), Silence())
    assert answer == Answer("answered", "unsatisfied", "")


async def test_unsatisfied_then_hanging_up_while_speaking_still_counts() -> None:
    answer, _ = await run(Press("3"), HangUp())
    assert answer.outcome == "answered" and answer.result == "unsatisfied"


async def test_a_key_during_the_intro_answers_at_once() -> None:
    answer, call = await run(Press("3"), Silence())
    assert answer.result == "unsatisfied"
    assert ("collect", ["hotline/survey_menu"]) not in call.log  # the question was not needed
    assert call.played()[0] == "hotline/survey_intro"  # stopped there by the key


async def test_a_wrong_key_gets_one_more_try() -> None:
    answer, call = await run(Silence(), Press("7"), Press("2"))
    assert answer == Answer("answered", "basically_satisfied")
    assert "hotline/invalid" in call.played()


async def test_no_key_at_all_is_an_answering_machine_or_silence() -> None:
    answer, call = await run(Silence(), Silence(), Silence())  # the intro, then two questions
    assert answer == Answer("no_key")
    assert [op for op, _ in call.log].count("collect") == 2
    assert call.log[-1][0] == "hangup"


async def test_hanging_up_before_a_key_is_hung_up() -> None:
    answer, _ = await run(HangUp())
    assert answer == Answer("hung_up")


async def test_an_unknown_type_is_not_read_out() -> None:
    _, call = await run(Press("1"), ticket_type="")
    assert not any("survey_type_" in p for p in call.played())
