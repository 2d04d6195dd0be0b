"""Typed AGI commands over any transport that can run one command at a time.

The exception tree, as callers see it::

    AGIError
     ├── AGIProtocolError          the peer is not speaking AGI (protocol.py)
     │    ├── RemoteProtocolError
     │    └── LocalProtocolError
     ├── AGIHangup                 the caller is gone: HANGUP, 511, stream closed
     ├── AGICommandError           510, 520, or result=-1 on a live channel
     └── AGITimeout                Asterisk did not answer in time

A runner (FastAGI socket, process AGI on pipes, a scripted fake) implements
:class:`CommandRunner`; :class:`AGIChannel` turns raw :class:`~hotline.agi.protocol.Response`
objects into values and the errors above, the same way for every runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hotline.agi.protocol import (
    Closed,
    Command,
    DeadChannel,
    Environment,
    Event,
    HangupNotice,
    InvalidCommand,
    Response,
    Trying,
    UsageError,
)
from hotline.errors import AGICommandError, AGIError, AGIHangup, AGITimeout

__all__ = ["AGICommandError", "AGIError", "AGIHangup", "AGITimeout"]  # re-exported


def final_reply(command: Command, event: Event) -> Response | None:
    """The reply to ``command`` in ``event``, ``None`` to keep reading, or the matching error."""
    if isinstance(event, Trying | HangupNotice):
        return None
    if isinstance(event, Response):
        return event
    if isinstance(event, DeadChannel):
        raise AGIHangup(f"{command.verb}: {event.line}")
    if isinstance(event, InvalidCommand):
        raise AGICommandError(f"{command.verb}: {event.line}")
    if isinstance(event, UsageError):
        raise AGICommandError(f"{command.verb}: " + " / ".join(event.lines))
    if isinstance(event, Closed):
        raise AGIHangup(f"{command.verb}: stream closed")
    raise AGIHangup(f"{command.verb}: unexpected {type(event).__name__}")


class CommandRunner(Protocol):
    @property
    def env(self) -> Environment: ...

    @property
    def hung_up(self) -> bool: ...

    async def execute(self, command: Command, extra_time: float = 0.0) -> Response:
        """Send ``command`` and return its final reply; wait at most the runner's idle timeout
        plus ``extra_time`` seconds (for commands that wait on the caller by design)."""
        ...


@dataclass(frozen=True, slots=True)
class Digits:
    """What GET DATA collected; ``timed_out`` when the caller stopped before ``max_digits``."""

    digits: str
    timed_out: bool


class AGIChannel:
    """The AGI commands the IVR uses, with results as Python values."""

    # Playing media keeps Asterisk busy as long as the prompt lasts: the idle timeout is for
    # a silent peer, not for a long announcement.
    MEDIA_TIME = 300.0

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    @property
    def env(self) -> Environment:
        return self.runner.env

    async def _run(self, verb: str, *args: str, extra_time: float = 0.0) -> Response:
        response = await self.runner.execute(Command(verb, tuple(args)), extra_time)
        if response.result == "-1":
            if not self.runner.hung_up and response.data != "hangup":
                await self._probe()
            if self.runner.hung_up or response.data == "hangup":
                raise AGIHangup(f"{verb}: channel hung up")
            raise AGICommandError(f"{verb} failed: {response.line}")
        return response

    async def _probe(self) -> None:
        """After ``result=-1``: was it a hang-up? Asterisk answers the interrupted command
        first and sends ``HANGUP`` after it, so one harmless command reads past that line."""
        await self.runner.execute(Command("GET VARIABLE", ("HOTLINE_ROUTE",)))

    async def answer(self) -> None:
        await self._run("ANSWER")

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str:
        """Play ``prompt``; return the escape digit pressed, or ``""`` if it played through."""
        response = await self._run("STREAM FILE", prompt, escape_digits, extra_time=self.MEDIA_TIME)
        code = response.result_int or 0
        return chr(code) if code > 0 else ""

    async def stream_file_from(
        self, prompt: str, escape_digits: str, offset: int
    ) -> tuple[str, int | None]:
        """Play ``prompt`` from sample ``offset``: (the escape digit pressed or ``""``, the
        sample where playing stopped — to resume from)."""
        response = await self._run(
            "STREAM FILE", prompt, escape_digits, str(offset), extra_time=self.MEDIA_TIME
        )
        code = response.result_int or 0
        return (chr(code) if code > 0 else ""), response.endpos

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> Digits:
        """Play ``prompt`` and collect up to ``max_digits`` DTMF keys."""
        response = await self._run(
            "GET DATA",
            prompt,
            str(timeout_ms),
            str(max_digits),
            extra_time=self.MEDIA_TIME + max(timeout_ms, 0) / 1000 * max(max_digits, 1),
        )
        return Digits(response.result, response.data == "timeout")

    async def set_variable(self, name: str, value: str) -> None:
        await self._run("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        response = await self._run("GET VARIABLE", name)
        return response.data if response.result == "1" else None

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._run("VERBOSE", message, str(level))

    async def hangup(self) -> None:
        await self._run("HANGUP")
