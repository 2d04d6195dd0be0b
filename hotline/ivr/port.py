"""The `CallChannel` port: what an IVR flow can do with a live call.

Flows are written against this port only; adapters make it real over FastAGI/process AGI
(:mod:`hotline.ivr.agi_channel`) and over ARI (:mod:`hotline.ivr.ari_channel`), and
:mod:`hotline.ivr.fake` scripts it for unit tests. Any step raises :class:`CallerHungUp` when
the caller has gone; a prompt that cannot be played raises :class:`ChannelError`.

Prompts are sound names (``hotline/welcome``); numbers and dates are spoken as sequences of
prompt clips (:func:`digits`, :func:`number`), so every adapter says them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hotline.errors import CallerHungUp, ChannelError

__all__ = ["CallerHungUp", "ChannelError"]  # re-exported from the exception tree

_NUMBER = re.compile(r"\+?\d{3,20}")


@dataclass(frozen=True, slots=True)
class Collected:
    digits: str
    timed_out: bool  # the caller stopped (or never started) before max digits / terminator


@dataclass(frozen=True, slots=True)
class Recording:
    name: str  # the recording's name where the switch keeps it (e.g. an ARI stored recording)
    seconds: float
    ended_by: str  # "silence" | "dtmf" | "max" | "hangup"


@dataclass(frozen=True, slots=True)
class Handoff:
    """Where the call goes when the IVR is done: the documented entry point of the queue.

    Over FastAGI the values become channel variables (``HOTLINE_ROUTE``, ``HOTLINE_TYPE``,
    ``HOTLINE_PRIORITY``, ``HOTLINE_IVR_PATH``, ``HOTLINE_TICKET``, ``HOTLINE_UTILITY``) and the
    dialplan continues in ``hotline-route,${HOTLINE_ROUTE}``; see the README.
    """

    route: str  # queue | utility | operator | hangup
    type: str = ""  # request type for the queue (I-1)
    priority: int = 0  # 0 normal; 9 a utility emergency (H-6), served first
    path: str = ""  # how the caller got here, e.g. "menu:1"
    ticket: str = ""  # a ticket number to pop on the agent's screen
    utility: str = ""  # water | power | gas
    extra: dict[str, str] = field(default_factory=dict)


class CallChannel(Protocol):
    @property
    def call_id(self) -> str: ...

    @property
    def caller(self) -> str: ...

    async def answer(self) -> None: ...

    async def play(self, prompts: Sequence[str], interrupt: str = "") -> str:
        """Play the prompts in order; a key in ``interrupt`` stops them and is returned. A key
        the caller typed ahead (during :meth:`play_through`) is returned at once instead."""
        ...

    async def play_through(self, prompts: Sequence[str]) -> None:
        """Play the prompts in full whatever the caller presses; the keys pressed meanwhile are
        kept for the next :meth:`play` or :meth:`collect` (type-ahead)."""
        ...

    async def collect(
        self, prompts: Sequence[str], max_digits: int, timeout_ms: int, terminator: str = "#"
    ) -> Collected:
        """Play the prompts (any key interrupts) and collect keys, typed-ahead ones first (the
        prompts are skipped when the caller has already started keying)."""
        ...

    async def record(self, name: str, max_seconds: int, silence_seconds: int = 3) -> Recording:
        """Record the caller after a beep; ``#`` or silence ends it."""
        ...

    async def say_digits(self, text: str, interrupt: str = "") -> str: ...

    async def say_number(self, n: int, interrupt: str = "") -> str: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def get_variable(self, name: str) -> str | None: ...

    async def transfer(self, handoff: Handoff) -> None:
        """Hand the call on; the IVR is done with it afterwards."""
        ...

    async def hangup(self) -> None: ...


def known_caller(number: str | None) -> str:
    """The caller's number, or "" when the switch has none: a withheld or unknown caller ID
    arrives as ``anonymous``, ``unknown``, ``restricted``, ``asterisk`` … and must never be
    taken for a phone number — it would join strangers' tickets together (rule Y-1)."""
    value = (number or "").strip()
    return value if _NUMBER.fullmatch(value) else ""


def prompt(name: str) -> str:
    """The sound name of a hotline prompt (they live in a directory of their own)."""
    return f"hotline/{name}"


def digits(text: str) -> list[str]:
    """Prompt clips that read ``text`` digit by digit (ticket numbers, phone numbers)."""
    return [prompt(f"digit_{c}") for c in text if c.isdigit()]


def number(n: int) -> list[str]:
    """Clips for 1 … 31 (days and months of a date)."""
    if not 1 <= n <= 31:
        raise ValueError(f"no clip for {n}")
    return [prompt(f"n_{n}")]


class TypeAhead:
    """Keys pressed while a prompt played through, waiting for the next step (mixed into the
    adapters)."""

    typed: str = ""

    def take_key(self, interrupt: str) -> str:
        """The first typed-ahead key if the step listens for it ("" otherwise: it is dropped,
        as a key a prompt does not listen for always is). A prompt that listens for no key
        leaves the keys for the step after it."""
        if not self.typed or not interrupt:
            return ""
        key, self.typed = self.typed[0], self.typed[1:]
        return key if key in interrupt else ""

    def take_digits(self, max_digits: int, terminator: str) -> tuple[str, bool]:
        """Typed-ahead keys for a collection: (keys, complete) — complete when they reach
        ``max_digits`` or the terminator (which is not returned)."""
        keys, complete = "", False
        while self.typed and len(keys) < max_digits:
            key, self.typed = self.typed[0], self.typed[1:]
            if terminator and key == terminator:
                complete = True
                break
            keys += key
        return keys, complete or len(keys) >= max_digits


class Speech:
    """Numbers as clips, the same for every adapter (mixed into them)."""

    async def play(self, prompts: Sequence[str], interrupt: str = "") -> str:
        raise NotImplementedError

    async def say_digits(self, text: str, interrupt: str = "") -> str:
        return await self.play(digits(text), interrupt)

    async def say_number(self, n: int, interrupt: str = "") -> str:
        return await self.play(number(n), interrupt)
