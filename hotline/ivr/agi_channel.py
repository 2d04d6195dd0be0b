"""`CallChannel` over AGI (FastAGI or process AGI): the main inbound path.

Prompts are STREAM FILE (interruptible), key collection is GET DATA on the last prompt,
recordings are RECORD FILE into the switch's recording directory (the dialplan tells us which,
in ``HOTLINE_RECORDING_DIR``; ARI serves the files from there as stored recordings), and a
hand-off sets channel variables for the dialplan, which continues when the AGI session ends.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from hotline.agi.channel import AGIChannel, AGICommandError, AGIHangup
from hotline.agi.protocol import Command
from hotline.ivr.port import CallerHungUp, ChannelError, Collected, Handoff, Recording, Speech

T = TypeVar("T")
RECORDING_DIR_VARIABLE = "HOTLINE_RECORDING_DIR"
DEFAULT_RECORDING_DIR = "/var/spool/asterisk/recording"  # Debian's, for ARI stored recordings
HANDOFF_VARIABLES = {
    "route": "HOTLINE_ROUTE",
    "type": "HOTLINE_TYPE",
    "priority": "HOTLINE_PRIORITY",
    "path": "HOTLINE_IVR_PATH",
    "ticket": "HOTLINE_TICKET",
    "utility": "HOTLINE_UTILITY",
}


class AgiCallChannel(Speech):
    def __init__(self, agi: AGIChannel) -> None:
        self.agi = agi

    @property
    def call_id(self) -> str:
        return self.agi.env.unique_id

    @property
    def caller(self) -> str:
        number = self.agi.env.caller_number
        return "" if number == "unknown" else number

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
        for name in prompts:
            key = await self._do(self.agi.stream_file(name, interrupt))
            if key:
                return key
        return ""

    async def collect(
        self, prompts: Sequence[str], max_digits: int, timeout_ms: int, terminator: str = "#"
    ) -> Collected:
        # every key interrupts the lead-in prompts; the last one plays inside GET DATA
        *lead, last = list(prompts) or [""]
        first = await self.play(lead, "0123456789*#")
        if first == terminator:
            return Collected("", False)
        got = await self._do(
            self.agi.get_data(last or "silence/1", timeout_ms, max_digits - len(first))
        )
        return Collected(first + got.digits, got.timed_out)

    async def record(self, name: str, max_seconds: int, silence_seconds: int = 3) -> Recording:
        folder = await self.get_variable(RECORDING_DIR_VARIABLE) or DEFAULT_RECORDING_DIR
        started = time.monotonic()
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
        ended = {"dtmf": "dtmf", "timeout": "max", "hangup": "hangup"}.get(
            response.data or "", "silence"
        )
        if response.result == "-1" and response.data != "hangup":
            raise ChannelError(f"RECORD FILE failed: {response.line}")
        return Recording(name, time.monotonic() - started, ended)

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
