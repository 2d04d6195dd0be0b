"""The agent desktop's WebSocket protocol, pure: what a console may send, checked, and the close
codes. Every type is documented in ``PROTOCOL.md`` next to this file (a test holds the two
together).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_TEXT = 64 * 1024  # a bigger message gets ``too_big`` (the socket stays usable)
MAX_FRAME = 1024 * 1024  # a bigger frame: aiohttp closes with 1009 (MESSAGE_TOO_BIG)
HELLO_WITHIN = 10.0  # seconds for the first message, ``hello``

# close codes (4000-4999 are the application's, RFC 6455 7.4.2)
UNAUTHORIZED = 4401  # no token, an unknown one, or one revoked while connected
FORBIDDEN = 4403  # the user is not an agent nor a supervisor
NO_HELLO = 4408  # no ``hello`` in time, or a command before it
TAKEN_OVER = 4409  # another session of the same agent took over
TOO_SLOW = 4429  # the console fell too far behind what it is sent: reconnect and resume
GOING_AWAY = 1001  # the backend shuts down (RFC 6455)
TRY_AGAIN = 1013  # the shared state (Redis) is away: reconnect later (RFC 6455 "Try Again Later")

REASON = re.compile(r"[a-z0-9_-]{1,32}")  # lunch, training, meeting, … (as the agent API)
CALL_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# type -> the fields it may carry besides ``type`` and ``id`` (required ones are checked below)
COMMANDS: dict[str, frozenset[str]] = {
    "hello": frozenset({"token", "last_seq", "take_over"}),
    "ping": frozenset(),
    "ready": frozenset(),
    "pause": frozenset({"reason", "after_call"}),
    "unpause": frozenset(),
    "end_wrap_up": frozenset(),
    "logout": frozenset({"after_call"}),
    "hang_up": frozenset({"call"}),
    "hold": frozenset({"call"}),
    "unhold": frozenset({"call"}),
    "transfer": frozenset({"call", "to", "extension"}),
    "utility": frozenset({"call", "utility", "ticket"}),
}
UTILITIES = ("water", "power", "gas")  # rule H-6
TICKET_NUMBER = re.compile(r"[0-9A-Za-z-]{1,32}")
TRANSFER_TO = ("agent", "queue", "operator")
EXTENSION = re.compile(r"[0-9]{3,8}")


class ProtocolError(Exception):
    """A message the protocol refuses: answered with an ``error`` of this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Command:
    type: str
    fields: dict[str, Any]
    ref: str | int | None  # the console's ``id``, echoed in the reply

    def flag(self, name: str) -> bool:
        return bool(self.fields.get(name, False))


def parse(text: str) -> Command:
    """One message from a console, checked; raises :class:`ProtocolError`."""
    if len(text) > MAX_TEXT:
        raise ProtocolError("too_big", f"a message is at most {MAX_TEXT} bytes")
    try:
        body = json.loads(text)
    except ValueError:
        raise ProtocolError("not_json", "a message is one JSON object") from None
    if not isinstance(body, dict):
        raise ProtocolError("not_json", "a message is one JSON object")
    ref = body.get("id")
    number = isinstance(ref, int) and not isinstance(ref, bool)
    if ref is not None and not (number or (isinstance(ref, str) and len(ref) <= 64)):
        raise ProtocolError("bad_field", "id: a number or a short string the reply echoes")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in COMMANDS:
        shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
        raise ProtocolError("unknown_type", f"no message type {shown!r}")
    fields = {k: v for k, v in body.items() if k not in ("type", "id")}
    extra = sorted(set(fields) - COMMANDS[kind])
    if extra:
        raise ProtocolError("bad_field", f"{extra[0][:40]}: not a field of {kind}")
    _check(kind, fields)
    return Command(kind, fields, ref)


def _check(kind: str, fields: dict[str, Any]) -> None:
    for name in ("take_over", "after_call"):
        if name in fields and not isinstance(fields[name], bool):
            raise ProtocolError("bad_field", f"{name}: true or false")
    if kind in ("hang_up", "hold", "unhold", "transfer", "utility"):
        call = fields.get("call")
        if not isinstance(call, str) or not CALL_ID.fullmatch(call):
            raise ProtocolError("bad_field", "call: the call id")
    check = _CHECKS.get(kind)
    if check is not None:
        check(fields)


def _hello(fields: dict[str, Any]) -> None:
    token = fields.get("token")
    if not isinstance(token, str) or not token or not token.isascii() or len(token) > 200:
        raise ProtocolError("bad_field", "token: the agent's bearer token")
    seq = fields.get("last_seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
        raise ProtocolError("bad_field", "last_seq: the last sequence number seen, >= 0")


def _pause(fields: dict[str, Any]) -> None:
    reason = fields.get("reason")
    if not isinstance(reason, str) or not REASON.fullmatch(reason):
        raise ProtocolError("bad_field", "reason: a-z, 0-9, _ and -, e.g. lunch")


def _transfer(fields: dict[str, Any]) -> None:
    to, extension = fields.get("to"), fields.get("extension")
    if to not in TRANSFER_TO:
        raise ProtocolError("bad_field", "to: agent, queue or operator")
    if (to == "agent") != (extension is not None):
        raise ProtocolError("bad_field", "extension: the other agent's (for to=agent only)")
    if extension is not None and not (
        isinstance(extension, str) and EXTENSION.fullmatch(extension)
    ):
        raise ProtocolError("bad_field", "extension: the other agent's phone, e.g. 8002")


def _utility(fields: dict[str, Any]) -> None:
    if fields.get("utility") not in UTILITIES:
        raise ProtocolError("bad_field", "utility: water, power or gas")
    ticket = fields.get("ticket")
    if ticket is not None and not (isinstance(ticket, str) and TICKET_NUMBER.fullmatch(ticket)):
        raise ProtocolError("bad_field", "ticket: the ticket's number, read to the duty line")


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "hello": _hello,
    "pause": _pause,
    "transfer": _transfer,
    "utility": _utility,
}


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)
