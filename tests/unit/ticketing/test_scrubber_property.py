"""Property: however the citizen's number is written into a ticket, no unit view, event log,
public page or Open311 record shows 7 or more of its digits in order (rules Y-1, P-2).

The check is :func:`leaks` (test_views uses it too): the output text is normalised
(full-width digits to ASCII, the separators space - . ( ) + / _ ~ · , 、 and their full-width
forms and the zero-width characters dropped,
every other character — ``*`` included — left in place to break a run), and none of the
number's 7-digit windows may occur in it. Every string of every JSON output is checked.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hotline.ticketing.model import CallbackResult, Citizen
from hotline.ticketing.ticket import Ticket
from hotline.ticketing.views import event_views, open311_view, public_view, ticket_view
from tests.unit.ticketing.conftest import (
    AGENT,
    DISPATCHER,
    REVIEWER,
    SUPERVISOR,
    WATER_HANDLER,
    WATER_LEADER,
    World,
)
from tests.unit.ticketing.test_ticket_rules import to_callback

# -- the leak check: 7 or more consecutive digits of a number, however written ---------------
_FULL_WIDTH_DIGITS = {0xFF10 + n: str(n) for n in range(10)}
# written out here, not taken from hotline.privacy: the oracle must not share the code's idea
_SEPARATORS = dict.fromkeys(
    map(
        ord,
        " \t\u00a0\u3000-‐‑‒–—―−－﹣ー.．()（）+＋/／_＿~～·・,，、\u200b\u200c\u200d\u2060\ufeff",
    )
)


def normalised(text: str) -> str:
    """Full-width digits become ASCII; the characters a number is written with (spaces, -, .,
    parentheses, +, and their full-width forms) are dropped; every other character, ``*``
    included, breaks a run of digits."""
    return text.translate(_FULL_WIDTH_DIGITS).translate(_SEPARATORS)


def digits(number: str) -> str:
    return "".join(c for c in normalised(number) if c.isdigit())


def leaks(text: str, number: str, size: int = 7) -> list[str]:
    """The ``size``-digit windows of ``number`` that ``text`` shows in clear."""
    n, flat = digits(number), normalised(text)
    return [n[i : i + size] for i in range(len(n) - size + 1) if n[i : i + size] in flat]


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value: keys, values, list items."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


def leaks_in(value: Any, number: str) -> list[str]:
    return [w for s in strings(value) for w in leaks(s, number)]


def revealed(text: str, number: str, shortest: int = 3) -> set[int]:
    """Positions of ``number`` that ``text`` shows: every fragment of ``shortest`` or more of
    its digits in order reveals where it sits."""
    n, flat = digits(number), normalised(text)
    return {
        k
        for i in range(len(n))
        for j in range(i + shortest, len(n) + 1)
        if n[i:j] in flat
        for k in range(i, j)
    }


# -- the property -----------------------------------------------------------------------------
NAME = "王小明"
SEPARATORS = " -.()+　－．（）＋/／_~·、，,ー\u200b\ufeff"  # as people (and pastes) write them
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ALPHABET = st.sampled_from(
    list("市民反映小区门口路灯坏了三天，。、号楼室元请回电话谢")
    + list("abcXx Z:;/_*#,0123456789-.()+")
)
HEAD, TAIL = st.text(ALPHABET, max_size=45), st.text(ALPHABET, max_size=8)  # 40: the cut
NUMBERS = st.one_of(
    st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),  # mobile
    st.from_regex(r"0[1-9][0-9]{1,2}-[2-8][0-9]{6,7}", fullmatch=True),  # landline
)


GAPS = ["", "", "", "", *SEPARATORS, " - ", ") ", "  "]  # between two digits


@st.composite
def written(draw: st.DrawFn, number: str) -> str:
    """``number`` as someone might type it: whole or 7+ of its digits, a country prefix,
    separators anywhere, full-width digits here and there."""
    n = digits(number)
    start = draw(st.integers(0, len(n) - 7))
    part = draw(st.sampled_from([n, n[start : draw(st.integers(start + 7, len(n)))]]))
    prefix = ""
    if part == n:
        prefix = draw(st.sampled_from(["", "", "+86", "+86 ", "86", "0086", "0086-", "(+86)"]))
        part = part[1:] if prefix and part.startswith("0") else part
    gaps = draw(st.lists(st.sampled_from(GAPS), min_size=len(part), max_size=len(part)))
    wide = draw(st.integers(0, 2 ** len(part) - 1)) if draw(st.booleans()) else 0
    out = [
        gap + (d.translate(FULL_WIDTH) if wide >> i & 1 else d)
        for i, (gap, d) in enumerate(zip(["", *gaps[1:]], part, strict=True))
    ]
    return prefix + "".join(out)


@st.composite
def texts(draw: st.DrawFn, number: str) -> list[str]:
    """A few texts with the number somewhere in filler (with the name, sometimes)."""
    return [
        draw(HEAD) + draw(st.sampled_from(["", NAME])) + draw(written(number)) + draw(TAIL)
        for _ in range(3)
    ]


def drive(world: World, citizen: Citizen, say: Any, subject: str) -> Ticket:
    """A ticket through every free text a unit can read (``say()`` writes one), closed and
    published: reply, leader's refusal, review send-back, callback, re-handling, publication."""
    t = world.register(citizen=citizen, subject=subject, content=say(), address=say())
    t.assign(world.ctx(DISPATCHER), ["water"])
    a = t.assignments[0]
    t.sign(world.ctx(WATER_HANDLER), a.id)
    t.draft_reply(world.ctx(WATER_HANDLER), a.id, "已现场处理完毕。" + say())
    t.approve_reply(world.ctx(WATER_LEADER), a.id, False, say())
    t.draft_reply(world.ctx(WATER_HANDLER), a.id, "已现场处理完毕。" + say())
    t.approve_reply(world.ctx(WATER_LEADER), a.id, True)
    t.review(world.ctx(REVIEWER), a.id, False, say())
    t.draft_reply(world.ctx(WATER_HANDLER), a.id, "已现场处理完毕。" + say())
    t.approve_reply(world.ctx(WATER_LEADER), a.id, True)
    t.review(world.ctx(REVIEWER), a.id, True, say())
    t.callback(world.ctx(AGENT), CallbackResult.UNSATISFIED, say())
    t.rehandle(world.ctx(REVIEWER), note=say())
    to_callback(world, t)
    t.callback(world.ctx(AGENT), CallbackResult.SATISFIED, say())
    t.decide_publication(world.ctx(SUPERVISOR), note=say())
    return t


def joins(char: str) -> bool:
    """A character that goes on a run of a number (the oracle's own list)."""
    return char.isdecimal() or char.isspace() or ord(char) in _SEPARATORS or char in "XxＸｘ"


def structure(ticket: Ticket, text: str) -> bool:
    """A string that is no free text: the ticket's number, an id, a time."""
    if text == ticket.number or text.startswith(ticket.id):
        return True
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), number=NUMBERS, cut=st.booleans())
def test_no_output_shows_seven_digits_of_the_citizens_number(
    data: st.DataObject, number: str, cut: bool
) -> None:
    # rules Y-1, P-2
    world = World()
    citizen = Citizen(NAME, number, "")
    said = itertools.cycle(data.draw(texts(number)))

    def say() -> str:
        return next(said)

    subject = "" if cut else say()  # no subject: the content's head (the cut, Ticket.register)
    t = drive(world, citizen, say, subject)
    outputs = {
        "unit view": ticket_view(t, masked=True, unit="water"),
        "events": event_views(t.events, citizen, masked=True),
        "public page": public_view(t, {"water": "市水务局"}),
        "open311": open311_view(t, {"water": "市水务局"}),
    }
    n = digits(number)
    windows = {n[i : i + 7] for i in range(len(n) - 6)}

    def shows(text: str) -> bool:
        flat = normalised(text)
        return any(w in flat for w in windows)

    # a ticket number or a time (never scrubbed) may share 7 digits with a drawn number
    assume(not any(shows(s) for s in strings(list(outputs.values())) if structure(t, s)))
    if cut:  # the content's head, never cut between two characters of a run (rule Y-1)
        content, head = t.content.strip(), t.subject
        rest = content[len(head) :]
        assert content.startswith(head) and not (rest and joins(head[-1]) and joins(rest[0]))
    for where, out in outputs.items():
        for s in strings(out):
            assert not shows(s), (where, s, leaks(s, number))
            assert NAME not in s, (where, s)
