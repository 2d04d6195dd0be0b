"""`CallChannel` over ARI, and the Stasis application that runs the IVR flows on it.

Theory of operation (after wazo-calld's ``stasis.py``): one WebSocket carries the events of the
``hotline`` Stasis application. :class:`StasisApp` maps them to calls — a ``StasisStart`` starts
a flow task with an :class:`AriCallChannel`; every later event of that channel (DTMF, playback
and recording finished, hang-up, ``StasisEnd``) goes to the channel's own queue, where the
channel's steps wait for them. Commands are REST calls. When the flow hands the call on, the
variables are set and the channel continues in the dialplan after ``Stasis()``, which routes it
exactly as after FastAGI.

Events can be lost: when the socket drops, it reconnects, and every call in Stasis then gets a
``HotlineResync`` marker in its queue, on which the waiting step asks Asterisk over REST whether
its channel, playback or recording still exists; a step that hears nothing for
``WATCHDOG_SECONDS`` does the same. On shutdown, calls get a grace period, then go back to the
dialplan (its safe path) rather than being left in Stasis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from hotline.agi.ari import AriPort, hold_timeout
from hotline.agi.stasis import DEFAULT_ROLE, RESYNC, RoleHandler, Stasis
from hotline.errors import AriError
from hotline.ivr.agi_channel import HANDOFF_VARIABLES
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

log = logging.getLogger(__name__)

Event = dict[str, Any]
GONE = ("StasisEnd", "ChannelHangupRequest", "ChannelDestroyed")
WATCHDOG_SECONDS = 60.0


class AriCallChannel(TypeAhead, Speech):
    def __init__(self, ari: AriPort, channel: dict[str, Any]) -> None:
        self.ari = ari
        self.id: str = channel["id"]
        self._caller = known_caller(channel.get("caller", {}).get("number"))
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.gone = False
        self._keeper: asyncio.Task[None] | None = None

    # -- the dead-man switch ----------------------------------------------------------------
    def keep_alive(self, seconds: int) -> None:
        """Keep the channel's absolute time-out ``seconds`` ahead while this node runs the
        call: if the node stops, Asterisk ends the Stasis call then, and the dialplan's ``T``
        takes the caller to the safe path (no caller waits in silence for ever)."""
        self._keeper = asyncio.create_task(self._push(seconds))

    async def _push(self, seconds: int) -> None:
        while not self.gone:
            with contextlib.suppress(AriError):
                await hold_timeout(self.ari, self.id, seconds)
            await asyncio.sleep(seconds / 3)

    async def let_go(self) -> None:
        """Stop keeping the time-out and clear it: the call leaves this node's hands."""
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        if not self.gone:
            with contextlib.suppress(AriError):
                await hold_timeout(self.ari, self.id, 0)

    def deliver(self, event: Event) -> None:
        """An event about this call, from the Stasis router."""
        self.events.put_nowait(event)

    @property
    def call_id(self) -> str:
        return self.id

    @property
    def caller(self) -> str:
        return self._caller

    # -- plumbing ---------------------------------------------------------------------------
    async def _rest(self, method: str, path: str, **params: Any) -> Any:
        if self.gone:
            raise CallerHungUp("the channel has left")
        try:
            return await self.ari.request(method, f"/channels/{self.id}{path}", **params)
        except AriError as exc:
            if exc.status == 404:  # the channel is no more
                self.gone = True
                raise CallerHungUp(str(exc)) from None
            raise ChannelError(str(exc)) from None

    async def _next(self, timeout: float | None) -> Event | None:
        """The channel's next event, None after ``timeout`` seconds; a hang-up raises. Without
        a timeout, a resync marker comes back after ``WATCHDOG_SECONDS`` of quiet."""
        try:
            event = await asyncio.wait_for(self.events.get(), timeout or WATCHDOG_SECONDS)
        except TimeoutError:
            if timeout is not None:
                return None
            event = {"type": RESYNC}
        if event.get("type") in GONE:
            self.gone = True
            raise CallerHungUp(event["type"])
        if event.get("type") == RESYNC:
            await self._rest("GET", "")  # a channel that is gone raises CallerHungUp here
        return event

    async def _exists(self, path: str) -> bool:
        """Whether a playback or live recording is still there (after a resync)."""
        try:
            await self.ari.get(path)
        except AriError as exc:
            if exc.status == 404:
                return False
            raise ChannelError(str(exc)) from None
        return True

    # -- CallChannel ------------------------------------------------------------------------
    async def answer(self) -> None:
        await self._rest("POST", "/answer")

    async def play(self, prompts: Sequence[str], interrupt: str = "") -> str:
        key = self.take_key(interrupt)
        if key or not prompts:
            return key
        return await self._playback(prompts, interrupt)

    async def play_through(self, prompts: Sequence[str]) -> None:
        if prompts:
            await self._playback(prompts, "", keep_keys=True)

    async def _playback(
        self, prompts: Sequence[str], interrupt: str, keep_keys: bool = False
    ) -> str:
        """Play to the end, or until a key in ``interrupt`` (returned). Other keys are dropped,
        or kept for the next step with ``keep_keys``."""
        playback = f"hotline-{uuid.uuid4().hex}"
        await self._rest(
            "POST", "/play", playbackId=playback, media=",".join(f"sound:{p}" for p in prompts)
        )
        while True:
            event = await self._next(None)
            assert event is not None
            kind = event.get("type")
            if kind == "PlaybackFinished" and event["playback"]["id"] == playback:
                if event["playback"].get("state") == "failed":
                    raise ChannelError(f"cannot play {prompts}")
                return ""
            if kind == RESYNC and not await self._exists(f"/playbacks/{playback}"):
                return ""  # it finished while we were not listening
            if kind == "ChannelDtmfReceived":
                digit = str(event["digit"])
                if digit in interrupt:
                    with contextlib.suppress(AriError):
                        await self.ari.delete(f"/playbacks/{playback}")
                    return digit
                if keep_keys:
                    self.typed += digit  # for the next step

    async def collect(
        self, prompts: Sequence[str], max_digits: int, timeout_ms: int, terminator: str = "#"
    ) -> Collected:
        keys, complete = self.take_digits(max_digits, terminator)
        if complete:
            return Collected(keys, False)
        if not keys:  # the caller has not started keying yet: the prompts first
            keys = await self.play(prompts, "0123456789*#")
        while True:
            if keys.endswith(terminator) and terminator:
                return Collected(keys[: -len(terminator)], False)
            if len(keys) >= max_digits:
                return Collected(keys[:max_digits], False)
            event = await self._next(timeout_ms / 1000)
            if event is None:
                return Collected(keys, True)
            if event.get("type") == "ChannelDtmfReceived":
                keys += str(event["digit"])

    async def record(self, name: str, max_seconds: int, silence_seconds: int = 3) -> Recording:
        started = asyncio.get_running_loop().time()
        try:
            await self._rest(
                "POST",
                "/record",
                name=name,
                format="wav",
                maxDurationSeconds=max_seconds,
                maxSilenceSeconds=silence_seconds,
                beep=True,
                terminateOn="#",
                ifExists="overwrite",
            )
            while True:
                event = await self._next(None)
                assert event is not None
                kind = event.get("type")
                if (
                    kind in ("RecordingFinished", "RecordingFailed")
                    and event["recording"]["name"] == name
                ):
                    if kind == "RecordingFailed":
                        raise ChannelError(f"recording failed: {event['recording'].get('cause')}")
                    return Recording(name, talk_seconds(event["recording"]), "silence")
                if kind == RESYNC and not await self._exists(f"/recordings/live/{name}"):
                    # it finished unseen: the time since the beep, less the silence that ended it
                    elapsed = asyncio.get_running_loop().time() - started
                    return Recording(name, max(0.0, elapsed - silence_seconds), "silence")
        except CallerHungUp:
            seconds = asyncio.get_running_loop().time() - started
            return Recording(name, seconds, "hangup")  # what was said is kept by Asterisk

    async def set_variable(self, name: str, value: str) -> None:
        await self._rest("POST", "/variable", variable=name, value=value)

    async def get_variable(self, name: str) -> str | None:
        if self.gone:
            raise CallerHungUp("the channel has left")
        try:
            reply = await self.ari.get(f"/channels/{self.id}/variable", variable=name)
        except AriError as exc:
            if exc.status == 404:  # a variable that is not set (a channel that left: next step)
                return None
            raise ChannelError(str(exc)) from None
        return reply.get("value") if isinstance(reply, dict) else None

    async def transfer(self, handoff: Handoff) -> None:
        values = {HANDOFF_VARIABLES[k]: str(getattr(handoff, k)) for k in HANDOFF_VARIABLES}
        values.update({f"HOTLINE_{k.upper()}": v for k, v in handoff.extra.items()})
        for name, value in values.items():
            await self.set_variable(name, value)
        await self.let_go()
        await self._rest("POST", "/continue")  # back to the dialplan, after Stasis()

    async def hangup(self) -> None:
        await self._rest("DELETE", "")


def talk_seconds(recording: dict[str, Any]) -> float:
    """How long the caller spoke: ``talking_duration`` (with silence detection on), else the
    whole ``duration``."""
    talking = recording.get("talking_duration")
    return float(talking if talking is not None else recording.get("duration") or 0)


CallHandler = Callable[[AriCallChannel], Awaitable[None]]


class StasisApp(Stasis):
    """The router with the IVR as its ``ivr`` role: ``handler`` runs for every inbound call."""

    def __init__(
        self,
        ari: AriPort,
        app: str,
        handler: CallHandler,
        roles: Mapping[str, RoleHandler] | None = None,
        dead_man: int = 0,
        **router: Any,
    ) -> None:
        self.handler = handler
        self.dead_man = dead_man  # seconds; 0: no dead-man switch
        self.calls: dict[str, AriCallChannel] = {}
        super().__init__(ari, app, {DEFAULT_ROLE: self._ivr, **(roles or {})}, **router)

    async def _ivr(self, router: Stasis, channel: Event, args: list[str]) -> None:
        call = AriCallChannel(self.ari, channel)
        self.calls[call.id] = call
        self.own(call.id, call)
        if self.dead_man:
            call.keep_alive(self.dead_man)
        try:
            await self.handler(call)
        finally:
            await call.let_go()  # also before a failure's safe path: it must not be cut short
            self.calls.pop(call.id, None)
