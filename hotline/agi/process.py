"""Classic process AGI: Asterisk starts ``hotline-agi <script> [args…]`` for every call.

Many existing sites launch scripts this way (``AGI(/usr/local/bin/hotline-agi,ivr)``). The
script speaks AGI on stdin/stdout through pyst2's ``asterisk.agi.AGI``; :class:`Pyst2Runner`
adapts it to our ``CommandRunner`` so the same flows run here as over FastAGI, and wraps the
limits of pyst2 0.5.1 on Python 3.11 so none of them reaches the caller as dead air:

* ``asterisk.fastagi`` imports the Python-2 ``SocketServer`` and cannot be imported: we never
  import it (FastAGI is :mod:`hotline.agi.fastagi`).
* ``AGI()`` installs a ``SIGHUP`` handler, which only works in the main thread: we build it in
  the main thread of this process and refuse clearly anywhere else.
* it writes ``str``: binary streams are wrapped in text streams.
* it logs every environment line and command to stderr — the caller's number in clear (rule
  Y-1): its stderr goes to a sink unless debug logging is on.
* an inline ``HANGUP`` line makes ``get_result`` raise ``ValueError`` and leaves the real reply
  unread: we mark the call hung up and read that reply, staying in step with Asterisk.
* ``511`` becomes ``AGIUnknownError``, ``result=-1`` becomes ``AGIAppError``: mapped to our
  hang-up / command errors.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from types import MappingProxyType
from typing import IO, Any

from hotline.agi.protocol import (
    Command,
    Environment,
    RemoteProtocolError,
    Response,
    _show,
    parse_response,
)
from hotline.errors import AGICommandError, AGIHangup

log = logging.getLogger(__name__)


class _Sink(io.StringIO):
    def write(self, s: str) -> int:
        return len(s)


def _text(stream: IO[Any]) -> IO[str]:
    if isinstance(stream, io.TextIOBase):
        return stream
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", line_buffering=True)


class _LineTap:
    """A text stream that remembers the last line pyst2 read, so our parser can read it too."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last = ""

    def readline(self) -> str:
        self.last = self.stream.readline()
        return self.last


class Pyst2Runner:
    """``CommandRunner`` over pyst2's ``AGI`` on the process's stdin/stdout.

    pyst2 does the I/O and the first classification (its exceptions); the raw reply line it
    read is then parsed by our protocol core, which keeps what pyst2 drops (``result=
    (timeout)``) and tells a ``HANGUP`` line from end of stream and from garbage.
    """

    def __init__(
        self,
        stdin: IO[Any] | None = None,
        stdout: IO[Any] | None = None,
        *,
        script: str = "",
        debug: bool = False,
    ) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "pyst2's AGI() installs a SIGHUP handler: build it in the main thread"
            )
        from asterisk.agi import AGI

        self._tap = _LineTap(_text(stdin or sys.stdin))
        stderr: IO[str] = sys.stderr if debug else _Sink()
        self.agi = AGI(stdin=self._tap, stdout=_text(stdout or sys.stdout), stderr=stderr)
        self._hung_up = False
        env = dict(self.agi.env)
        # Process AGI has no agi_network_script; the script name is our first argument.
        env.setdefault("agi_network_script", script or env.get("agi_arg_1", "ivr"))
        self._env = Environment(MappingProxyType(env))

    @property
    def env(self) -> Environment:
        return self._env

    @property
    def hung_up(self) -> bool:
        return self._hung_up or bool(self.agi._got_sighup)

    async def execute(self, command: Command, extra_time: float = 0.0) -> Response:
        from asterisk import agi as pyst2

        line = command.encode().decode("utf-8")[:-1]  # validates; quoted as Asterisk reads it
        try:
            self.agi.test_hangup()
            self.agi.stdout.write(line + "\n")
            self.agi.stdout.flush()
        except pyst2.AGIHangup as exc:  # SIGHUP from Asterisk
            self._hung_up = True
            raise AGIHangup(f"{command.verb}: {exc}") from None
        except BrokenPipeError:
            self._hung_up = True
            raise AGIHangup(f"{command.verb}: Asterisk closed the pipe") from None
        return self._reply(command, pyst2)

    def _reply(self, command: Command, pyst2: Any) -> Response:
        for _ in range(8):  # HANGUP lines and 100 Trying may come before the final reply
            response = self._read_one(command, pyst2)
            if response is not None:
                return response
        raise RemoteProtocolError(f"{command.verb}: no final reply")

    def _read_one(self, command: Command, pyst2: Any) -> Response | None:
        """One line through pyst2: the final reply, or None for a line to skip."""
        try:
            self.agi.get_result()
        except (pyst2.AGIResultHangup, pyst2.AGIAppError):
            pass  # result=-1 or (hangup): a reply all the same, parsed below
        except ValueError:  # no status code: HANGUP, end of stream or garbage
            self._no_status(command)
            return None
        except pyst2.AGIUnknownError as exc:
            code = exc.args[0] if exc.args else 0
            if code == 100:
                return None  # Trying…: the final reply follows
            if code == 511:
                self._hung_up = True
                raise AGIHangup(f"{command.verb}: 511 dead channel") from None
            raise AGICommandError(f"{command.verb}: unexpected reply {exc.args}") from None
        except (pyst2.AGIInvalidCommand, pyst2.AGIUsageError) as exc:
            raise AGICommandError(f"{command.verb}: {exc}") from None
        raw = self._tap.last.strip()
        if not raw.startswith("200 "):
            raise RemoteProtocolError(f"not an AGI reply: {_show(raw)}")
        response = parse_response(raw[4:])
        if response.data == "hangup":
            self._hung_up = True
        return response

    def _no_status(self, command: Command) -> None:
        """A line pyst2 could not read: note a HANGUP, raise for the end or for garbage."""
        raw = self._tap.last.strip()
        if raw == "HANGUP":
            self._hung_up = True
            return
        if raw == "":
            self._hung_up = True
            raise AGIHangup(f"{command.verb}: stream closed")
        raise RemoteProtocolError(f"not an AGI reply: {_show(raw)}")
