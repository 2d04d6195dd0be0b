"""`CallChannel` over AGI (FastAGI or process AGI): the main inbound path.

Prompts are STREAM FILE (interruptible), key collection is GET DATA on the last prompt,
recordings are RECORD FILE into the switch's recording directory (the dialplan tells us which,
in ``HOTLINE_RECORDING_DIR``; ARI serves the files from there as stored recordings), and a
hand-off sets channel variables for the dialplan, which continues when the AGI session ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TypeVar

from hotline.agi.channel import AGIChannel
from hotline.agi.protocol import Command
from hotline.errors import AGICommandError, AGIHangup
from hotline.ivr.port import (
    CallerHungUp,
    ChannelError,
    Collected,
    Handoff,
    Recording,
    Speech,
    TypeAhead,
    known_caller,
)

T = TypeVar("T")
RECORDING_DIR_VARIABLE = "HOTLINE_RECORDING_DIR"
DEFAULT_RECORDING_DIR = "/var/spool/asterisk/recording"  # Debian's, for ARI stored recordings
KEYS = "0123456789*#"
MAX_TYPE_AHEAD = 32  # keys kept during one prompt; then it plays to the end deaf
HANDOFF_VARIABLES = {
    "route": "HOTLINE_ROUTE",
    "type": "HOTLINE_TYPE",
    "priority": "HOTLINE_PRIORITY",
    "path": "HOTLINE_IVR_PATH",
    "ticket": "HOTLINE_TICKET",
    "utility": "HOTLINE_UTILITY",
}


WAV_RATE = 8000  # samples per second of Asterisk's "wav" format: endpos counts them
KEPT_SILENCE = 1.0  # a message ended by silence keeps its last second of silence


def recorded(data: str, endpos: int | None, max_seconds: int) -> tuple[float, str]:
    """How long the caller spoke and what ended it, from RECORD FILE's reply.

    Asterisk answers ``(dtmf)``, ``(hangup)`` or — for both the silence that ends a message and
    the time limit — ``(timeout)``; ``endpos`` is where the file ends. After silence Asterisk
    cuts the file back to one second past the last sound, so that second is not speech.
    """
    seconds = (endpos or 0) / WAV_RATE
    if data in ("dtmf", "hangup"):
        return seconds, data
    if seconds >= max_seconds - 0.5:
        return seconds, "max"
    return max(0.0, seconds - KEPT_SILENCE), "silence"


class AgiCallChannel(TypeAhead, Speech):
    def __init__(self, agi: AGIChannel) -> None:
        self.agi = agi

    @property
    def call_id(self) -> str:
        return self.agi.env.unique_id

    @property
    def caller(self) -> str:
        return known_caller(self.agi.env.caller_number)

    async def _do(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        except AGIHangup as exc:
            raise CallerHungUp(str(exc)) from None
        except AGICommandError as exc:
            raise ChannelError(str(exc)) from None

    async def answer(self) -> None:
        await self._do(self.agi.answer())

    async def play(self, prompts: Sequence[str], interrupt: str = "") -> str:
        key = self.take_key(interrupt)
        if key:
            return key
        for name in prompts:
            key = await self._do(self.agi.stream_file(name, interrupt))
            if key:
                return key
        return ""

    async def play_through(self, prompts: Sequence[str]) -> None:
        # Asterisk drops keys pressed during a STREAM FILE that does not listen for them: so
        # listen, keep the key, and resume the prompt where it stopped.
        for name in prompts:
            offset = 0
            for _ in range(MAX_TYPE_AHEAD):
                key, endpos = await self._do(self.agi.stream_file_from(name, KEYS, offset))
                if not key or endpos is None:
                    break
                self.typed += key
                offset = endpos
            else:
                await self._do(self.agi.stream_file_from(name, "", offset))

    async def collect(
        self, prompts: Sequence[str], max_digits: int, timeout_ms: int, terminator: str = "#"
    ) -> Collected:
        first, complete = self.take_digits(max_digits, terminator)
        if complete:
            return Collected(first, False)
        if not first:  # every key interrupts the lead-in prompts; the last plays in GET DATA
            *lead, last = list(prompts) or [""]
            first = await self.play(lead, KEYS)
            if first == terminator:
                return Collected("", False)
        else:  # the caller is already keying: no prompt
            last = ""
        got = await self._do(
            self.agi.get_data(last or "silence/1", timeout_ms, max_digits - len(first))
        )
        return Collected(first + got.digits, got.timed_out)

    async def record(self, name: str, max_seconds: int, silence_seconds: int = 3) -> Recording:
        folder = await self.get_variable(RECORDING_DIR_VARIABLE) or DEFAULT_RECORDING_DIR
        args = (
            f"{folder.rstrip('/')}/{name}",
            "wav",
            "#",
            str(max_seconds * 1000),
            "0",
            "BEEP",
            f"s={silence_seconds}",
        )
        response = await self._do(
            self.agi.runner.execute(Command("RECORD FILE", args), max_seconds + 30)
        )
        if response.result == "-1" and response.data != "hangup":
            raise ChannelError(f"RECORD FILE failed: {response.line}")
        return Recording(name, *recorded(response.data or "", response.endpos, max_seconds))

    async def set_variable(self, name: str, value: str) -> None:
        await self._do(self.agi.set_variable(name, value))

    async def get_variable(self, name: str) -> str | None:
        return await self._do(self.agi.get_variable(name))

    async def transfer(self, handoff: Handoff) -> None:
        values = {HANDOFF_VARIABLES[k]: str(getattr(handoff, k)) for k in HANDOFF_VARIABLES}
        values.update({f"HOTLINE_{k.upper()}": v for k, v in handoff.extra.items()})
        route = values.pop("HOTLINE_ROUTE")
        for name, value in values.items():
            await self.set_variable(name, value)
        await self.set_variable("HOTLINE_ROUTE", route)  # last: the dialplan acts on it

    async def hangup(self) -> None:
        await self._do(self.agi.hangup())
