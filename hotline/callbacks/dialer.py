"""The outbound survey calls over ARI, and the loop that places them (rule B-1).

Theory of operation. :class:`Dialer` looks every ``poll`` seconds: it reaps calls whose node
died (their lease ran out), turns unused codes past their deadline into the configured result,
and claims due calls (:meth:`Campaigns.claim`: the cap across nodes). Each claimed attempt is
placed by :class:`SurveyCalls`: ``POST /channels/create`` with the attempt's fixed id
``survey-<ticket>-<n>`` and ``appArgs`` ``survey,<campaign>`` (a repeat gets 409, never a
second ringing phone), so the channel enters this node's Stasis application before it rings;
the ``survey`` role then dials it with the hotline's number, tells busy, no answer and
rejected apart by the dial status and the Q.850 cause (as the utility legs do), and on the
answer runs the survey flow (:mod:`hotline.callbacks.survey`) over the same ``CallChannel``
adapter the IVR uses. The outcome goes back to the campaign, which plans what follows.

Without a switch (no ``ari.url``) nothing can be dialled: each attempt is recorded as
``failed`` at once, so the campaign moves on to self-evaluation instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hotline.agi.ari import AriPort
from hotline.agi.stasis import RoleHandler, Stasis
from hotline.callbacks.store import Campaigns, Outcome, Placement
from hotline.callbacks.survey import Answer, survey
from hotline.clock import Clock
from hotline.errors import AriError
from hotline.ivr.ari_channel import AriCallChannel
from hotline.queue.conference import outcome_of

log = logging.getLogger(__name__)

# ticket id, cycle, why -> phone, type ("", "": the ticket no longer waits for this callback)
Contact = Callable[[str, int, str], Awaitable[tuple[str, str]]]
GONE = ("StasisEnd", "ChannelHangupRequest", "ChannelDestroyed")
DIAL_RINGING = ("", "RINGING", "PROGRESS", "PROCEED")
WRITE_BATCH = 200  # outcomes in one transaction at most


@dataclass(frozen=True, slots=True)
class Dialling:
    placement: Placement
    ticket_type: str
    done: asyncio.Future[Answer | str]  # the survey's answer, or the outcome of no answer


class SurveyCalls:
    def __init__(
        self,
        ari: AriPort | None,
        app: str,
        *,
        endpoint: str = "PJSIP/{number}@citizen-trunk",
        caller_id: str = "12345",
        ring_timeout: float = 30.0,
        key_timeout: float = 8.0,
        call_seconds: float = 180.0,
        reason_seconds: int = 60,
    ) -> None:
        self.ari, self.app = ari, app
        self.endpoint, self.caller_id = endpoint, caller_id
        self.ring_timeout, self.key_timeout = ring_timeout, key_timeout
        self.call_seconds, self.reason_seconds = call_seconds, reason_seconds
        self.stasis: Stasis | None = None
        self.dialling: dict[str, Dialling] = {}
        self.placed = 0

    def roles(self) -> dict[str, RoleHandler]:
        return {"survey": self.run}

    async def call(self, placement: Placement, phone: str, ticket_type: str) -> Answer | str:
        """Place one attempt; its Answer when it was answered, else the outcome."""
        if self.ari is None or not phone:
            return "failed"
        leg = placement.channel_id
        done: asyncio.Future[Answer | str] = asyncio.get_running_loop().create_future()
        self.dialling[leg] = Dialling(placement, ticket_type, done)
        try:
            try:
                await self.ari.post(
                    "/channels/create",
                    endpoint=self.endpoint.format(number=phone),
                    app=self.app,
                    appArgs=f"survey,{placement.id}",
                    channelId=leg,
                    body={"variables": {"CALLERID(num)": self.caller_id}},
                )
            except AriError as exc:  # 409: this attempt's channel exists (never a second call)
                log.warning("survey %s: not placed (%s)", leg, exc.status)
                return "failed"
            self.placed += 1
            bound = self.ring_timeout + self.call_seconds + 30
            try:
                return await asyncio.wait_for(asyncio.shield(done), bound)
            except TimeoutError:
                with contextlib.suppress(AriError):
                    await self.ari.delete(f"/channels/{leg}")
                return "failed"
        finally:
            self.dialling.pop(leg, None)

    async def run(self, router: Stasis, channel: dict[str, Any], args: list[str]) -> None:
        """The ``survey`` role: the created channel entered; ring it, then the survey."""
        leg = str(channel.get("id", ""))
        entry = self.dialling.get(leg)
        assert self.ari is not None
        if entry is None:  # not one this node is placing (left from before a restart)
            with contextlib.suppress(AriError):
                await self.ari.delete(f"/channels/{leg}")
            return
        call = AriCallChannel(self.ari, channel)
        router.own(leg, call)
        outcome: Answer | str = "failed"
        try:
            rang = await self._ring(call)
            if rang != "answered":
                outcome = rang
                return
            await self._out_of_dial_bridge(leg)
            p = entry.placement
            outcome = await survey(
                call,
                p.number,
                entry.ticket_type,
                f"survey-{p.number}-{p.n}",
                key_timeout_ms=int(self.key_timeout * 1000),
                reason_seconds=self.reason_seconds,
            )
        finally:
            if not entry.done.done():
                entry.done.set_result(outcome)

    async def _out_of_dial_bridge(self, leg: str) -> None:
        """A dialled channel stays in Stasis's invisible dial bridge, where it cannot be
        recorded (asterisk/asterisk#2044, fixed upstream in 2026-08 but not in every 22.x):
        in and out of a bridge of our own takes it out, and the reason can be recorded."""
        assert self.ari is not None
        bridge = f"bridge-{leg}"
        try:
            await self.ari.post("/bridges", type="mixing", bridgeId=bridge)
            await self.ari.post(f"/bridges/{bridge}/addChannel", channel=leg)
            await self.ari.post(f"/bridges/{bridge}/removeChannel", channel=leg)
        except AriError as exc:  # the survey goes on; only the reason may not be recorded
            log.warning("survey %s: out of the dial bridge failed (%s)", leg, exc.status)
        finally:
            with contextlib.suppress(AriError):
                await self.ari.delete(f"/bridges/{bridge}")

    async def _ring(self, call: AriCallChannel) -> str:
        assert self.ari is not None
        leg = call.id
        try:
            await self.ari.post(f"/channels/{leg}/dial", timeout=int(self.ring_timeout) + 5)
        except AriError:
            with contextlib.suppress(AriError):
                await self.ari.delete(f"/channels/{leg}")
            return "failed"
        loop = asyncio.get_running_loop()
        until = loop.time() + self.ring_timeout
        while True:
            try:
                event = await asyncio.wait_for(call.events.get(), until - loop.time())
            except TimeoutError:
                with contextlib.suppress(AriError):
                    await self.ari.delete(f"/channels/{leg}")
                return "no_answer"
            kind = str(event.get("type"))
            if kind == "Dial":
                status = str(event.get("dialstatus") or "")
                if status == "ANSWER":
                    return "answered"
                if status not in DIAL_RINGING:
                    with contextlib.suppress(AriError):
                        await self.ari.delete(f"/channels/{leg}")
                    return outcome_of(status)
            elif kind == "ChannelStateChange":
                if (event.get("channel") or {}).get("state") == "Up":
                    return "answered"
            elif kind in GONE:
                call.gone = True
                cause = event.get("cause")
                return outcome_of("", cause if isinstance(cause, int) else None)


class Dialer:
    """The loop: reap, expire, claim, place — each claimed attempt its own task."""

    def __init__(
        self,
        campaigns: Campaigns,
        calls: SurveyCalls,
        contact: Contact,
        clock: Clock,
        node: str,
        poll: float = 1.0,
    ) -> None:
        self.campaigns, self.calls, self.contact = campaigns, calls, contact
        self.clock, self.node, self.poll = clock, node, poll
        self.tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._away = False
        self._ended: list[tuple[Outcome, asyncio.Future[str]]] = []  # to record, in order
        self._have_ended = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        swept = -self.poll
        try:
            while True:
                try:
                    now = self.clock.monotonic()
                    sweep = now - swept >= self.poll
                    await self.run_once(sweep)
                    swept = now if sweep else swept
                    self._away = False
                except Exception as exc:  # the database is away: the campaigns wait there
                    if not self._away:
                        log.warning("callbacks: cannot claim (%s); trying on", type(exc).__name__)
                        self._away = True
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)

    async def _record(self, ended: Outcome) -> str:
        """An attempt's outcome, written with the others ending meanwhile (one transaction a
        batch: calls ending together cost one commit)."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._ended.append((ended, done))
        self._have_ended.set()
        return await done

    async def _write(self) -> None:
        while True:
            await self._have_ended.wait()
            self._have_ended.clear()
            batch, self._ended = self._ended[:WRITE_BATCH], self._ended[WRITE_BATCH:]
            if self._ended:
                self._have_ended.set()
            try:
                states = await self.campaigns.finish_many([e for e, _ in batch], node=self.node)
            except Exception as exc:  # the database is away: the leases pass them on (failed)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for ended, done in batch:
                if not done.done():
                    done.set_result(states.get(ended.placement.id, ""))

    async def run_once(self, sweep: bool = True) -> list[Placement]:
        """Claim and place what is due; ``sweep``: first reap dead nodes' calls and expire
        codes (once a poll: a call ending wakes the loop for the claim alone)."""
        if sweep:
            await self.campaigns.reap()
            await self.campaigns.expire()
        claimed = await self.campaigns.claim(self.node)
        for p in claimed:
            task = asyncio.create_task(self.place(p))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return claimed

    async def place(self, p: Placement) -> None:
        outcome: Answer | str = "failed"
        try:
            phone, ticket_type = await self.contact(p.ticket_id, p.cycle, "satisfaction callback")
            if not ticket_type:  # the office recorded the callback itself: no call
                await self.campaigns.drop(p.id, "moved_on")
                log.info("survey %s: not placed, the ticket has moved on", p.channel_id)
                return
            log.info("survey %s: calling (ticket %s, attempt %d)", p.channel_id, p.number, p.n)
            outcome = await self.calls.call(p, phone, ticket_type)
        except asyncio.CancelledError:  # shutting down: the lease runs out, the attempt is failed
            raise
        except Exception:
            log.exception("survey %s: the call failed", p.channel_id)
        if isinstance(outcome, Answer):
            answer = outcome.result if outcome.outcome == "answered" else ""
            ended = Outcome(p, outcome.outcome, answer, recording=outcome.recording)
            shown = outcome.result or outcome.outcome
        else:
            ended, shown = Outcome(p, outcome), outcome
        try:
            state = await self._record(ended)
        except Exception as exc:
            log.warning("survey %s: %s not recorded (%s)", p.channel_id, shown, type(exc).__name__)
            return
        log.info("survey %s: %s (campaign %s)", p.channel_id, shown, state or "moved on")
