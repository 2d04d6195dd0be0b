"""The satisfaction survey the citizen hears when the hotline calls back (rule B-1), written
against the :class:`~hotline.ivr.port.CallChannel` port like the IVR's flows.

The call names the ticket by its number and type — nothing of who the citizen is (Y-1): the
person who answers may not be the one who called. "1 satisfied, 2 basically satisfied, 3
unsatisfied" (a key during the intro counts at once); one more try after a wrong key or
silence; for 3 the reason may be said after the
beep (``#`` or silence ends it), kept as a recording for the unit's re-handling (B-2). A call
answered with no key at all — an answering machine, silence — is ``no_key``; a hang-up before a
key is ``hung_up``: the campaign tries again later.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline.ivr.port import CallChannel, CallerHungUp, ChannelError, Recording, digits, prompt

KEYS = {"1": "satisfied", "2": "basically_satisfied", "3": "unsatisfied"}
TYPE_PROMPTS = ("consultation", "help", "suggestion", "complaint")


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: str  # answered | no_key | hung_up
    result: str = ""  # satisfied | basically_satisfied | unsatisfied
    recording: str = ""  # the reason for 3, if said


async def survey(
    call: CallChannel,
    number: str,
    ticket_type: str,
    recording_name: str,
    *,
    key_timeout_ms: int = 8000,
    reason_seconds: int = 60,
) -> Answer:
    """Run the survey on an answered call; the call is hung up at the end."""
    result = ""
    try:
        intro = [prompt("survey_intro"), prompt("survey_ticket"), *digits(number)]
        if ticket_type in TYPE_PROMPTS:
            intro.append(prompt(f"survey_type_{ticket_type}"))
        # a citizen who knows the answer may key it during the intro (it stops there)
        result = KEYS.get(await call.play(intro, interrupt="".join(KEYS)), "")
        for _ in range(0 if result else 2):
            got = await call.collect([prompt("survey_menu")], 1, key_timeout_ms, terminator="")
            result = KEYS.get(got.digits, "")
            if result:
                break
            if got.digits:
                await call.play_through([prompt("invalid")])
        if not result:
            await call.hangup()
            return Answer("no_key")
        said = ""
        if result == "unsatisfied":
            await call.play_through([prompt("survey_reason")])
            try:
                heard = await call.record(recording_name, reason_seconds, silence_seconds=3)
            except ChannelError:  # no recording: the answer stands without its reason
                heard = Recording(recording_name, 0.0, "failed")
            said = heard.name if heard.seconds >= 0.5 else ""
            if heard.ended_by == "hangup":
                return Answer("answered", result, said)
        await call.play_through([prompt("survey_thanks")])
        await call.hangup()
        return Answer("answered", result, said)
    except CallerHungUp:
        return Answer("answered", result) if result else Answer("hung_up")
