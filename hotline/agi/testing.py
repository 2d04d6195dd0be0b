"""An in-package scripted fake of Asterisk's side of AGI, for unit tests of flows.

``ScriptedRunner`` answers each command from a script of ``(verb, reply)`` pairs. Replies are
raw AGI text and go through the real protocol core, so a flow under test sees exactly what it
would see from Asterisk — including ``HANGUP`` lines, ``511`` and ``520`` blocks. When the
script runs out, the caller has hung up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hotline.agi.channel import final_reply
from hotline.agi.protocol import NEED_DATA, AGIConnection, Command, Environment, Response
from hotline.errors import AGIHangup

DEFAULT_ENV = {
    "agi_network": "yes",
    "agi_network_script": "ivr",
    "agi_request": "agi://127.0.0.1:4573/ivr",
    "agi_channel": "PJSIP/citizen-trunk-00000001",
    "agi_language": "zh",
    "agi_type": "PJSIP",
    "agi_uniqueid": "1700000000.1",
    "agi_callerid": "13800138000",
    "agi_calleridname": "unknown",
    "agi_context": "citizen-inbound",
    "agi_extension": "12345",
    "agi_priority": "5",
}


def env_block(variables: Mapping[str, str]) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in variables.items()).encode() + b"\n"


class ScriptedRunner:
    def __init__(
        self, script: Sequence[tuple[str, str]], env: Mapping[str, str] | None = None
    ) -> None:
        self.script = list(script)
        self.sent: list[Command] = []
        self.connection = AGIConnection()
        self.connection.receive_data(env_block(env or DEFAULT_ENV))
        event = self.connection.next_event()
        assert isinstance(event, Environment)
        self._env = event

    @property
    def env(self) -> Environment:
        return self._env

    @property
    def hung_up(self) -> bool:
        return self.connection.hung_up

    @property
    def verbs(self) -> list[str]:
        return [c.verb for c in self.sent]

    async def execute(self, command: Command, extra_time: float = 0.0) -> Response:
        self.connection.send(command)
        self.sent.append(command)
        if not self.script:
            self.connection.receive_data(b"")
        else:
            verb, reply = self.script.pop(0)
            if verb != command.verb:
                raise AssertionError(f"flow sent {command.verb}, script expected {verb}")
            self.connection.receive_data(reply.encode() + b"\n")
        while True:
            event = self.connection.next_event()
            if event is NEED_DATA:
                raise AGIHangup("script reply incomplete")
            result = final_reply(command, event)  # type: ignore[arg-type]
            if result is not None:
                return result
