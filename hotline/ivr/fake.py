"""A scripted caller behind the `CallChannel` port, for unit tests of flows.

The script says what the caller does at each point where a caller can act — an interruptible
prompt, a key collection, a recording — in order: press a key, type keys, stay silent, speak
for a while, or hang up. Prompts nobody can interrupt pass without consuming a step (but a
``HangUp`` next in the script happens there). When the script runs out, the next point where
the caller could act is a hang-up. Everything the flow did is kept in ``log`` for assertions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hotline.errors import CallerHungUp, ChannelError
from hotline.ivr.port import Collected, Handoff, Recording, Speech


@dataclass(frozen=True, slots=True)
class Press:
    key: str


@dataclass(frozen=True, slots=True)
class Type:
    keys: str  # may end with the terminator


@dataclass(frozen=True, slots=True)
class Silence:
    pass


@dataclass(frozen=True, slots=True)
class Speak:
    seconds: float
    ended_by: str = "silence"


@dataclass(frozen=True, slots=True)
class HangUp:
    pass


Step = Press | Type | Silence | Speak | HangUp


@dataclass
class ScriptedCall(Speech):
    script: list[Step]
    caller_number: str = "13800138000"
    unique_id: str = "1700000000.1"
    missing_prompts: set[str] = field(default_factory=set)  # prompts that do not exist
    log: list[tuple[str, object]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    handoff: Handoff | None = None

    @property
    def call_id(self) -> str:
        return self.unique_id

    @property
    def caller(self) -> str:
        return self.caller_number

    def _next(self) -> Step:
        if not self.script:
            return HangUp()  # the script ran out: the caller is gone
        return self.script.pop(0)

    def _hangup_pending(self) -> bool:
        return bool(self.script) and isinstance(self.script[0], HangUp)

    def played(self) -> list[str]:
        return [p for op, value in self.log if op == "play" for p in value]  # type: ignore[attr-defined]

    async def answer(self) -> None:
        self.log.append(("answer", None))

    async def play(self, prompts: Sequence[str], interrupt: str = "") -> str:
        missing = [p for p in prompts if p in self.missing_prompts]
        if missing:
            raise ChannelError(f"no prompt {missing[0]}")
        if not prompts:
            return ""  # nothing to hear: no time for the caller to do anything
        if not interrupt:
            self.log.append(("play", list(prompts)))
            if self._hangup_pending():
                self._next()
                raise CallerHungUp("hung up during a prompt")
            return ""
        step = self._next()
        key = ""
        if isinstance(step, Press) and step.key in interrupt:
            key = step.key
        elif isinstance(step, Type) and step.keys and step.keys[0] in interrupt:
            key = step.keys[0]
            if len(step.keys) > 1:
                self.script.insert(0, Type(step.keys[1:]))
        stopped = key or isinstance(step, HangUp)
        self.log.append(("play", list(prompts[:1] if stopped else prompts)))  # unheard: not logged
        if isinstance(step, HangUp):
            raise CallerHungUp("hung up during a prompt")
        return key  # "" after silence, or a key the prompt does not listen for

    async def play_through(self, prompts: Sequence[str]) -> None:
        """Heard in full; the caller's next keys stay in the script for the next step (the
        scripted caller always types ahead)."""
        await self.play(prompts)

    async def collect(
        self, prompts: Sequence[str], max_digits: int, timeout_ms: int, terminator: str = "#"
    ) -> Collected:
        self.log.append(("collect", list(prompts)))
        step = self._next()
        if isinstance(step, HangUp):
            raise CallerHungUp("hung up while keying")
        if isinstance(step, Silence | Speak):
            return Collected("", True)
        keys = step.key if isinstance(step, Press) else step.keys
        if terminator and terminator in keys:
            return Collected(keys.split(terminator, 1)[0][:max_digits], False)
        got = keys[:max_digits]
        return Collected(got, len(got) < max_digits)

    async def record(self, name: str, max_seconds: int, silence_seconds: int = 3) -> Recording:
        self.log.append(("record", name))
        step = self._next()
        if isinstance(step, HangUp):
            return Recording(name, 0.0, "hangup")  # what was said so far is kept
        if isinstance(step, Speak):
            return Recording(name, min(step.seconds, max_seconds), step.ended_by)
        return Recording(name, 0.0, "silence")

    async def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value

    async def get_variable(self, name: str) -> str | None:
        return self.variables.get(name)

    async def transfer(self, handoff: Handoff) -> None:
        self.log.append(("transfer", handoff))
        self.handoff = handoff

    async def hangup(self) -> None:
        self.log.append(("hangup", None))
