"""Masking of citizen identity (rules Y-1, P-2): never log or show a number or name in clear.

:func:`mask_phone` and :func:`mask_name` hide the identity fields themselves; the
:class:`Scrubber` (and :func:`scrub`) hides identity in free text — whatever agents, units and
the office typed into a ticket. It is the only scrubber: every view that leaves the core uses it.

Theory of operation. The text is first *normalised* one character for one, so positions stay
put: every decimal digit (full-width ``０``-``９`` too) becomes ASCII, every space a plain
space, the dashes, dots, parentheses, plus signs, slashes, underscores, tildes, middle dots and
commas a number is written with (full-width ones too, and the zero-width characters that hide
between digits, :data:`SEPARATORS`) their ASCII form. A *run* is a maximal stretch of digits
joined by any number of those separators (``+86 (0510) 8612-3456`` is one run); its *groups*
are its blocks of digits (the last may end in ``X``), its *digit string* the groups joined. In
every run:

1. the citizen's own number (its country prefix dropped): every window of 7 of its digits found
   anywhere in the digit string is masked — the whole number in any spelling, and parts of it;
2. identity numbers: whole groups apart by spaces or dashes only that join to 17 digits and a
   digit or ``X``;
3. other people's phones: whole groups (2 digits or more each, at most five) that join to a
   mobile ``1[3-9]`` + 9 digits, a landline ``0`` + area code + 7–8 digits, or a 7–8 digit local
   number, each with an optional ``0086``/``86`` in front; groups that form a ticket number
   (``20261127-0042``) or a date (``2026-11-27``, ``2026.11.27``, ``2026/11/27``) take no part
   in this step.
   The longest match wins where they overlap.

The citizen's name (2 characters or more) and identity number are masked verbatim (``x`` = ``X``).
Masking turns each hidden character into ``*`` (in runs only the digits: separators stay), so a
reader sees that something was removed. Amounts, house numbers, dates and ticket numbers stay.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


def mask_phone(number: str) -> str:
    """Hide at least half of a number: ``13812345678`` -> ``138****5678`` (mobile, 11+ digits),
    ``62345678`` -> ``****5678`` (landline), ``867530`` -> ``****30``.

    Service numbers of up to five digits (12345, 110, extensions) are not personal.
    """
    if not number or number == "unknown" or len(number) <= 5:
        return number
    if len(number) >= 11:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    if len(number) >= 8:
        return "*" * (len(number) - 4) + number[-4:]
    return "*" * (len(number) - 2) + number[-2:]


def mask_name(name: str) -> str:
    """``张三丰`` -> ``张**``: the family name stays, the rest is hidden."""
    if not name or name == "unknown":
        return name
    return name[0] + "*" * (len(name) - 1)


# -- the scrubber ------------------------------------------------------------------------------
# Besides every space (str.isspace), the characters a phone number is written with. The default
# subject's cut in hotline/ticketing/ticket.py (Ticket.register) extends over the same ones.
DASHES = "-‐‑‒–—―−－﹣ー"  # the look-alike dashes are the point (ー: the katakana long mark)
SLASHES, LOWS, TILDES, DOTS, COMMAS = "/／", "_＿", "~～", "·・", ",，、"
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"  # zero-width characters join a run unseen
SEPARATORS = (
    DASHES + ".．" + "(（" + ")）" + "+＋" + SLASHES + LOWS + TILDES + DOTS + COMMAS + INVISIBLE
)
WINDOW = 7  # this many digits of the citizen's own number in order are masked wherever they are

_FOLD = (
    dict.fromkeys(DASHES, "-")
    | dict(zip("．（）＋Ｘｘ", ".()+Xx", strict=True))
    | dict.fromkeys(SLASHES, "/")
    | dict.fromkeys(LOWS, "_")
    | dict.fromkeys(TILDES, "~")
    | dict.fromkeys(DOTS, ".")
    | dict.fromkeys(COMMAS, ",")
    | dict.fromkeys(INVISIBLE, " ")
)
_RUN = re.compile(r"[0-9]+[Xx]?(?:[ ().+/_~,-]*[0-9]+[Xx]?)*")
_GROUP = re.compile(r"[0-9]+[Xx]?")
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9Xx]")
_MOBILE, _LANDLINE = r"1[3-9][0-9]{9}", r"0[1-9][0-9]{8,10}"
_PHONE = re.compile(
    rf"{_MOBILE}|{_LANDLINE}|[0-9]{{7,8}}|(?:00)?86(?:{_MOBILE}|0?[1-9][0-9]{{8,10}})"
)
_MAX_GROUPS = 5  # +86 139 1234 0249 is four


class Person(Protocol):
    """Whose identity is scrubbed (a ``Citizen``)."""

    @property
    def name(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def id_number(self) -> str: ...


def _fold(char: str) -> str:
    if char.isdecimal():
        return str(unicodedata.decimal(char))
    if char.isspace():
        return " "
    return _FOLD.get(char, char)


def normalise(text: str) -> str:
    """One character for one: ASCII digits, plain spaces, ASCII ``- . ( ) + X``."""
    return "".join(map(_fold, text))


@dataclass(frozen=True, slots=True)
class _Group:
    start: int  # where its characters are in the text
    end: int
    digits: str
    joint: str  # the separators before it ("" for a run's first group)


def _groups(flat: str, run: re.Match[str]) -> list[_Group]:
    out: list[_Group] = []
    for m in _GROUP.finditer(flat, run.start(), run.end()):
        joint = flat[out[-1].end : m.start()] if out else ""
        out.append(_Group(m.start(), m.end(), m.group(), joint))
    return out


def _national(digits: str) -> str:
    if digits.startswith("0086"):
        return digits[4:]
    return digits[2:] if digits.startswith("86") and len(digits) >= 12 else digits


def _is_date(year: str, month: str, day: str) -> bool:
    return year[:2] in ("19", "20") and 1 <= int(month) <= 12 and 1 <= int(day) <= 31


def _protected(groups: list[_Group]) -> set[int]:
    """Groups that form a ticket number (``20261127-0042``) or a date (``2026-11-27``)."""
    out: set[int] = set()
    for i, g in enumerate(groups):
        d = g.digits
        nxt = groups[i + 1] if i + 1 < len(groups) else None
        if len(d) == 8 and nxt and nxt.joint == "-" and 4 <= len(nxt.digits) <= 5:
            if nxt.digits.isdigit() and _is_date(d[:4], d[4:6], d[6:]):
                out |= {i, i + 1}
        elif len(d) == 4 and i + 2 < len(groups):
            month, day = groups[i + 1], groups[i + 2]
            parts = (d, month.digits, day.digits)
            shape = month.joint == day.joint and month.joint in ("-", ".", "/")
            if shape and all(p.isdigit() and len(p) <= 2 for p in parts[1:]) and _is_date(*parts):
                out |= {i, i + 1, i + 2}
    return out


def _candidates(groups: list[_Group]) -> list[tuple[int, int, int]]:
    """(length, first, last) of every span of whole groups that is a phone or an ID number."""
    protected = _protected(groups)
    found: list[tuple[int, int, int]] = []
    for i in range(len(groups)):
        joined, phone, id_number = "", True, True
        for j in range(i, min(len(groups), i + 18)):
            joined += groups[j].digits
            phone = phone and j - i < _MAX_GROUPS and j not in protected
            phone = phone and len(groups[j].digits) >= 2
            # an ID number is written whole or in blocks apart by spaces or dashes only
            id_number = id_number and (j == i or not groups[j].joint.strip(" -"))
            if len(joined) > 18:
                break
            if (id_number and _ID_NUMBER.fullmatch(joined)) or (phone and _PHONE.fullmatch(joined)):
                found.append((len(joined), i, j))
    return found


def _mask_numbers(groups: list[_Group], hidden: bytearray) -> None:
    """Steps 2 and 3: identity numbers and phones, the longest first, never overlapping."""
    taken: set[int] = set()
    for _, i, j in sorted(_candidates(groups), key=lambda c: (-c[0], c[1])):
        if taken.isdisjoint(range(i, j + 1)):
            taken.update(range(i, j + 1))
            for g in groups[i : j + 1]:
                hidden[g.start : g.end] = b"\1" * (g.end - g.start)


class Scrubber:
    """Masks one person's identity (and anybody's phone and ID numbers) in free text; build it
    once per ticket and call it on every text, or on a whole JSON value with :meth:`tree`."""

    def __init__(self, person: Person | None = None) -> None:
        name = person.name if person else ""
        id_number = person.id_number if person else ""
        number = _national(re.sub(r"[^0-9]", "", normalise(person.phone if person else "")))
        self._size = min(WINDOW, len(number)) if len(number) > 5 else 0  # 12345 is nobody's
        self._grams = {number[i : i + self._size] for i in range(len(number) - self._size + 1)}
        verbatim = [normalise(v) for v, least in ((name, 2), (id_number, 6)) if len(v) >= least]
        self._verbatim = [re.compile(re.escape(v), re.IGNORECASE) for v in verbatim]

    def __call__(self, text: str) -> str:
        if not text:
            return text
        flat = normalise(text)
        hidden = bytearray(len(text))
        for pattern in self._verbatim:
            for m in pattern.finditer(flat):
                hidden[m.start() : m.end()] = b"\1" * (m.end() - m.start())
        for run in _RUN.finditer(flat):
            groups = _groups(flat, run)
            self._mask_own(groups, hidden)
            _mask_numbers(groups, hidden)
        if not any(hidden):
            return text
        return "".join("*" if h else c for c, h in zip(text, hidden, strict=True))

    def _mask_own(self, groups: list[_Group], hidden: bytearray) -> None:
        """Step 1: every window of the citizen's own number, wherever it lies in the run."""
        if not self._size:
            return
        joined = "".join(g.digits for g in groups)
        where = [k for g in groups for k in range(g.start, g.end)]
        for i in range(len(joined) - self._size + 1):
            if joined[i : i + self._size] in self._grams:
                for k in where[i : i + self._size]:
                    hidden[k] = 1

    def tree(self, value: Any, keep: Collection[str] = ()) -> Any:
        """Every string in a JSON-like value (mapping values, list items, recursively) scrubbed,
        except under the keys in ``keep`` (structural ones: ids, states, times)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: v if k in keep else self.tree(v, keep) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.tree(v, keep) for v in value]
        return value


def scrub(text: str, person: Person | None = None) -> str:
    """Rules Y-1, P-2: ``text`` without ``person``'s name, phone and identity number, and
    without anybody's phone or identity number (see the module's theory of operation)."""
    return Scrubber(person)(text)
