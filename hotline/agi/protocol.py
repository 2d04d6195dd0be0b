"""Sans-I/O core of the Asterisk Gateway Interface (AGI), the script side.

Theory of operation (after h11): the connection is a small state machine fed with bytes from
Asterisk (:meth:`AGIConnection.receive_data`, ``b""`` for end of stream) and drained of events
(:meth:`AGIConnection.next_event`, which returns :data:`NEED_DATA` when a line is incomplete).
Commands become bytes with :meth:`AGIConnection.send`. Nothing here touches a socket or a loop,
so the same core serves FastAGI over asyncio, process AGI on pipes, and the benchmarks.

The wire, as Asterisk's ``res_agi`` speaks it:

* first an environment block, ``agi_key: value`` lines ended by an empty line;
* then strictly one command line from us, one response from Asterisk:
  ``200 result=<r> [(data)] [endpos=<n>]``; ``100 result=0 Trying...`` before the final answer
  of some commands (GOSUB); ``510 Invalid or unknown command``; ``511 Command Not Permitted on a
  dead channel or intercepted subroutine``; ``520-…`` usage lines closed by ``520 End of proper
  usage.``;
* a bare ``HANGUP`` line whenever the channel hangs up, also in the middle of a command, after
  which the pending command still gets its response.

Anything else from Asterisk is a :class:`RemoteProtocolError`; anything illegal we try to send
(a newline in an argument, a command over Asterisk's buffer) is a :class:`LocalProtocolError`.
Both derive from :class:`AGIProtocolError`, the only exception the parser raises.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qsl

from hotline.errors import AGIError, AGIProtocolError, LocalProtocolError, RemoteProtocolError

# Asterisk reads a command into a buffer of AGI_BUF_LEN (2048) bytes and splits it into at most
# MAX_ARGS (128) words; longer lines are cut, so we refuse to send them.
MAX_COMMAND_BYTES: Final = 2047
MAX_COMMAND_ARGS: Final = 127
# Limits on what we accept, so a hostile or broken peer cannot make us buffer without end.
MAX_LINE_BYTES: Final = 16 * 1024
MAX_ENV_LINES: Final = 512
MAX_USAGE_LINES: Final = 256
MAX_BUFFER_BYTES: Final = 256 * 1024  # Asterisk sends one reply at a time; more is a flood


# The errors of the core live in the one exception tree (hotline.errors).
__all__ = ["AGIError", "AGIProtocolError", "LocalProtocolError", "RemoteProtocolError"]


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True, slots=True)
class Environment:
    """The ``agi_*`` block Asterisk sends first."""

    variables: Mapping[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.variables.get(key, default)

    @property
    def unique_id(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def caller_number(self) -> str:
        return self.get("agi_callerid")

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def network_script(self) -> str:
        """``agi_network_script``: the part of ``agi://host:port/<this>`` after the slash."""
        return self.get("agi_network_script")

    @property
    def script(self) -> str:
        """The script path without its query string, and without leading or trailing slashes."""
        return self.network_script.split("?", 1)[0].strip("/")

    @property
    def params(self) -> Mapping[str, str]:
        """Query-string parameters of the FastAGI URL (``agi://h/ivr?lang=zh``)."""
        parts = self.network_script.split("?", 1)
        if len(parts) < 2:
            return MappingProxyType({})
        return MappingProxyType(dict(parse_qsl(parts[1], keep_blank_values=True)))

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1`` … ``agi_arg_N`` in order (the AGI() application's extra arguments)."""
        out: list[str] = []
        n = 1
        while f"agi_arg_{n}" in self.variables:
            out.append(self.variables[f"agi_arg_{n}"])
            n += 1
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Response:
    """A ``200`` reply: ``result=`` value, the optional ``(data)`` and ``endpos=``."""

    result: str
    data: str | None = None
    endpos: int | None = None
    line: str = ""

    @property
    def result_int(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Trying:
    """``100 result=0 Trying...``: the final response follows."""

    line: str


@dataclass(frozen=True, slots=True)
class InvalidCommand:
    """``510``: Asterisk does not know the command."""

    line: str


@dataclass(frozen=True, slots=True)
class DeadChannel:
    """``511``: the command is not permitted on a dead channel."""

    line: str


@dataclass(frozen=True, slots=True)
class UsageError:
    """``520``: bad syntax; ``lines`` holds the usage text Asterisk sent."""

    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """A bare ``HANGUP`` line: the channel hung up. A pending command still gets its reply."""


@dataclass(frozen=True, slots=True)
class Closed:
    """Asterisk closed the stream."""


Event = (
    Environment
    | Response
    | Trying
    | InvalidCommand
    | DeadChannel
    | UsageError
    | HangupNotice
    | Closed
)


class State(enum.Enum):
    ENVIRONMENT = "environment"  # reading the agi_* block
    IDLE = "idle"  # our turn: send a command
    AWAITING = "awaiting"  # a command is out, its reply is not complete
    USAGE = "usage"  # inside a 520 block
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Command:
    """One AGI command: a verb of one or more words and its arguments."""

    verb: str
    args: tuple[str, ...] = ()

    def encode(self) -> bytes:
        if not _is_verb(self.verb):
            raise LocalProtocolError(f"not an AGI verb: {self.verb!r}")
        if len(self.args) > MAX_COMMAND_ARGS - len(self.verb.split()):
            raise LocalProtocolError(f"too many arguments for {self.verb}: {len(self.args)}")
        if self.args:
            data = f"{self.verb} {' '.join([quote(a) for a in self.args])}\n".encode()
        else:
            data = f"{self.verb}\n".encode()
        if len(data) > MAX_COMMAND_BYTES:
            raise LocalProtocolError(f"{self.verb} is {len(data)} bytes, over Asterisk's buffer")
        return data


_VERB = re.compile(r"[A-Z]+( [A-Z]+)*")


@functools.lru_cache(maxsize=256)
def _is_verb(verb: str) -> bool:
    return _VERB.fullmatch(verb) is not None


_SAFE = re.compile(r"[^\s\"\\\0]+")  # no space, tab, line break, quote, backslash, NUL


def quote(arg: str) -> str:
    """Quote one argument the way ``res_agi``'s ``parse_args`` reads it back."""
    if _SAFE.fullmatch(arg):
        return arg
    if "\n" in arg or "\r" in arg or "\0" in arg:
        raise LocalProtocolError(f"argument carries a line break or NUL: {arg!r}")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


_STATUS = re.compile(r"(\d{3})([ -])(.*)")
_ENV_KEY = re.compile(r"agi_\w+")
_ENV_PAIRS = re.compile(r"^(agi_\w+):(.*)$", re.MULTILINE)  # one match per valid line
# The end of the environment block: an empty line (after at least one line, or at the start).
_BLOCK_END = re.compile(rb"(?:^|\n)\r?\n")
_RESULT = re.compile(r"result=(\S*)(.*)")
_ENDPOS = re.compile(r"\s*endpos=(-?\d+)\s*$")


_DIGIT_RUN = re.compile(r"\d{4,}(?=\d{4})")


def _show(line: str) -> str:
    """A bad line for an error message: cut short, long digit runs (numbers) masked (Y-1)."""
    return repr(_DIGIT_RUN.sub(lambda m: "*" * len(m.group()), line[:80]))


def parse_response(line: str) -> Response:
    """Parse the text of a 200 line after ``200 ``."""
    if line.startswith("result=") and " " not in line:  # the common bare `result=N`
        return Response(result=line[7:], line=line)
    m = _RESULT.fullmatch(line)
    if m is None:
        raise RemoteProtocolError(f"200 reply without result=: {_show(line)}")
    result, rest = m.group(1), m.group(2)
    endpos = None
    e = _ENDPOS.search(rest)
    if e is not None:
        endpos = int(e.group(1))
        rest = rest[: e.start()]
    rest = rest.strip()
    data = None
    if rest.startswith("(") and rest.endswith(")"):
        data = rest[1:-1]
    elif rest:
        data = rest  # e.g. "Gosub complete"; kept verbatim
    return Response(result=result, data=data, endpos=endpos, line=line)


@dataclass(slots=True)
class AGIConnection:
    """The script's side of one AGI conversation."""

    state: State = State.ENVIRONMENT
    hung_up: bool = False
    _buffer: bytearray = field(default_factory=bytearray)
    _eof: bool = False
    _env: dict[str, str] = field(default_factory=dict)
    _usage: list[str] = field(default_factory=list)
    _error: RemoteProtocolError | None = None

    # -- bytes in ---------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes from Asterisk (``b""``: end of stream). Beyond :data:`MAX_BUFFER_BYTES`
        unread, the peer is flooding us: the connection is broken for good."""
        if self._error is not None:
            raise self._error
        if self._eof:
            if data:
                self._error = RemoteProtocolError("data after end of stream")
                raise self._error
            return
        if not data:
            self._eof = True
            return
        self._buffer += data
        if len(self._buffer) > MAX_BUFFER_BYTES:
            self._buffer.clear()
            self._error = RemoteProtocolError(f"over {MAX_BUFFER_BYTES} bytes unread")
            raise self._error

    def _next_line(self) -> str | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise RemoteProtocolError(f"line longer than {MAX_LINE_BYTES} bytes")
            return None
        if end > MAX_LINE_BYTES:
            raise RemoteProtocolError(f"line longer than {MAX_LINE_BYTES} bytes")
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return raw.rstrip(b"\r").decode("utf-8", errors="replace")

    # -- events out -------------------------------------------------------------------------
    def next_event(self) -> Event | _NeedData:
        if self._error is not None:
            raise self._error
        if self.state is State.ENVIRONMENT and (end := _BLOCK_END.search(self._buffer)):
            return self._env_block(end)
        while True:
            if self.state is State.CLOSED:
                return Closed()
            line = self._next_line()
            if line is None:
                return self._close() if self._eof else NEED_DATA
            event = self._on_line(line)
            if event is not None:
                return event

    def _on_line(self, line: str) -> Event | None:
        if line == "HANGUP" and self.state is not State.ENVIRONMENT:
            self.hung_up = True
            return HangupNotice()
        if self.state is State.ENVIRONMENT:
            return self._env_line(line)
        if self.state is State.USAGE:
            return self._usage_line(line)
        if self.state is State.IDLE:
            raise RemoteProtocolError(f"unsolicited line from Asterisk: {_show(line)}")
        return self._reply_line(line)

    def _close(self) -> Closed:
        if self.state is State.ENVIRONMENT and self._env:
            self.state = State.CLOSED
            raise RemoteProtocolError("stream ended inside the environment block")
        self.state = State.CLOSED
        if self._buffer:
            raise RemoteProtocolError("stream ended inside a line")
        return Closed()

    def _env_block(self, m: re.Match[bytes]) -> Environment:
        """Fast path: the rest of the environment block is in the buffer; parse it at once."""
        raw = bytes(self._buffer[: m.start()])
        del self._buffer[: m.end()]
        text = raw.decode("utf-8", errors="replace")
        lines = text.count("\n") + 1 if raw else 0
        if len(self._env) + lines > MAX_ENV_LINES:
            raise RemoteProtocolError(f"environment over {MAX_ENV_LINES} lines")
        if len(raw) > MAX_LINE_BYTES and max(map(len, raw.split(b"\n"))) > MAX_LINE_BYTES:
            raise RemoteProtocolError(f"line longer than {MAX_LINE_BYTES} bytes")
        pairs = _ENV_PAIRS.findall(text) if raw else []
        if len(pairs) != lines:  # some line is not `agi_key: value`
            bad = next(ln for ln in text.split("\n") if not _ENV_PAIRS.fullmatch(ln))
            raise RemoteProtocolError(f"not an environment line: {_show(bad)}")
        self._env.update({k: v.strip() for k, v in pairs})
        if not self._env:
            raise RemoteProtocolError("empty environment block")
        self.state = State.IDLE
        return Environment(MappingProxyType(dict(self._env)))

    def _env_line(self, line: str) -> Environment | None:
        if line == "":
            if not self._env:
                raise RemoteProtocolError("empty environment block")
            self.state = State.IDLE
            return Environment(MappingProxyType(dict(self._env)))
        key, sep, value = line.partition(":")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise RemoteProtocolError(f"not an environment line: {_show(line)}")
        if len(self._env) >= MAX_ENV_LINES:
            raise RemoteProtocolError(f"environment over {MAX_ENV_LINES} lines")
        self._env[key] = value.strip()
        return None

    def _reply_line(self, line: str) -> Event | None:
        m = _STATUS.fullmatch(line)
        if m is None:
            raise RemoteProtocolError(f"not an AGI status line: {_show(line)}")
        code, sep, text = m.group(1), m.group(2), m.group(3)
        if code == "520" and sep == "-":
            self.state = State.USAGE
            self._usage = [line]
            return None
        if sep != " ":
            raise RemoteProtocolError(f"continuation line outside a 520 block: {_show(line)}")
        if code == "100":
            return Trying(line)
        self.state = State.IDLE
        if code == "200":
            return parse_response(text)
        if code == "510":
            return InvalidCommand(line)
        if code == "511":
            return DeadChannel(line)
        if code == "520":
            return UsageError((line,))
        raise RemoteProtocolError(f"unknown AGI status {code}: {_show(line)}")

    def _usage_line(self, line: str) -> Event | None:
        self._usage.append(line)
        if line.startswith("520 "):
            self.state = State.IDLE
            lines, self._usage = tuple(self._usage), []
            return UsageError(lines)
        if len(self._usage) > MAX_USAGE_LINES:
            raise RemoteProtocolError(f"520 usage block over {MAX_USAGE_LINES} lines")
        return None

    # -- commands out -----------------------------------------------------------------------
    def send(self, command: Command) -> bytes:
        if self.state is not State.IDLE:
            raise LocalProtocolError(f"cannot send {command.verb} while {self.state.value}")
        data = command.encode()
        self.state = State.AWAITING
        return data
