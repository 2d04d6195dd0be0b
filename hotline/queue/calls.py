"""Queue calls over ARI: callers wait in a holding bridge, agents' phones are rung, answered
calls are bridged — the call control the queue service drives.

The dialplan contract. ``[hotline-queue]`` broadcasts the caller to the nodes' Stasis
applications with the role ``queue``; the node that claims it reads the IVR's hand-off from the
channel's variables (``HOTLINE_TYPE``, ``HOTLINE_PRIORITY``, ``HOTLINE_UTILITY``,
``HOTLINE_TICKET``, ``HOTLINE_IVR_PATH``; ``key=value`` arguments, where given, are read
instead)::

    StasisBroadcast(2000,^hotline-,queue)

Theory of operation. :meth:`QueueCalls.caller` runs for the caller's whole stay: it puts the
channel in a holding bridge ``hold-<call>`` with music on hold, enters the call in the queue
(priority from rules E-1 and H-6, skills from the utility), and arms a dead-man switch: the
channel's absolute time-out, pushed forward while this node lives and cleared on answer; if the
node dies, Asterisk ends the Stasis call at the time-out and the dialplan's ``T`` extension
takes the caller to the safe path. It tells the caller their place in line every
``announce_interval`` seconds. When the service decides an offer, :meth:`QueueCalls.ring`
creates the agent leg with the offer's fixed channel id (``offer-<call>-<n>``: a repeat is a
409, never a second ringing phone; role ``agent``, the call's context in channel variables)
and dials it. The agent leg's events go to the caller's task (it owns the leg's id): an answer
moves both into a mixing bridge ``talk-<call>`` (CONNECT); a busy or failed leg is declined
(RINGNOANSWER at once); the service's ring time-out cancels it (the leg is hung up). When
either side of a connected call hangs up, the other is hung up (COMPLETECALLER /
COMPLETEAGENT) and the agent wraps up. A caller who hangs up while waiting is ABANDON; one who
waits past ``queue.max_wait_seconds`` leaves for a voice message (EXITWITHTIMEOUT): the
handler sets ``HOTLINE_QUEUE_EXIT=voicemail`` and the dialplan records it on the safe path,
which the backend sweeps in as a ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hotline.agi.ari import AriPort, hold_timeout
from hotline.agi.stasis import RESYNC, RoleHandler, Stasis
from hotline.clock import Clock
from hotline.config.settings import QueueSettings
from hotline.errors import AriError
from hotline.privacy import mask_phone
from hotline.queue.acd import OfferDecision, Priority, QueueEvent, classify
from hotline.queue.agent import AgentStateError
from hotline.queue.conference import CONFERENCE, Conferences
from hotline.queue.service import QueueService

log = logging.getLogger(__name__)

Event = dict[str, Any]
CALLER_GONE = ("StasisEnd", "ChannelHangupRequest", "ChannelDestroyed")
DIAL_FAILED = frozenset({"BUSY", "CONGESTION", "CHANUNAVAIL", "NOANSWER", "CANCEL", "DONTCALL"})
EXIT_VARIABLE = "HOTLINE_QUEUE_EXIT"
UTILITY_PRIORITY = "9"  # the IVR's HOTLINE_PRIORITY of a utility emergency (rule H-6)
EMERGENCY_PRIORITY = "10"  # the emergency plan (rule E-1)
ADOPTED = "adopted"  # the argument of a caller moved here from a node that stopped
TRANSFER = "HotlineTransfer"  # in a talking call's inbox: the agent transferred the caller
TRANSFER_TARGETS = ("agent", "queue", "operator")
LEG_ENTERS = 2.0  # seconds a created agent leg may take to enter the application
RECONCILE_GRACE = 5.0  # seconds an offer may take to appear in Asterisk (another node places it)
HANDOFF = {  # the IVR's hand-off variables (hotline/ivr/agi_channel.py)
    "type": "HOTLINE_TYPE",
    "priority": "HOTLINE_PRIORITY",
    "utility": "HOTLINE_UTILITY",
    "ticket": "HOTLINE_TICKET",
    "path": "HOTLINE_IVR_PATH",
}


def from_snapshot(channel: Event) -> dict[str, str] | None:
    """The hand-off from the channel's snapshot, when ari.conf's ``channelvars`` lists every
    hand-off variable (one request fewer per variable); None when it does not."""
    shown = channel.get("channelvars")
    if not isinstance(shown, dict) or any(name not in shown for name in HANDOFF.values()):
        return None
    return {key: str(shown[name] or "") for key, name in HANDOFF.items()}


def parse_args(args: list[str]) -> dict[str, str]:
    """``key=value`` arguments from the dialplan; anything else is ignored (and logged)."""
    out: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key:
            out[key.strip()] = value.strip()
        elif arg:
            log.warning("queue: argument %r is not key=value; ignored", arg[:40])
    return out


def priority_of(context: Mapping[str, str]) -> Priority:
    raw = context.get("priority", "")
    return classify(
        emergency_plan=raw == EMERGENCY_PRIORITY,
        utility=raw == UTILITY_PRIORITY or bool(context.get("utility")),
        ticket=context.get("ticket") or None,
    )


def skills_of(context: Mapping[str, str]) -> list[str]:
    utility = context.get("utility", "")
    return [f"utility:{utility}"] if utility else []


@dataclass
class QueueCall:
    """One caller's stay: the events of the caller's channel and of the agent legs rung."""

    call_id: str
    caller: str
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    offers: dict[str, OfferDecision] = field(default_factory=dict)  # leg id -> offer
    legs_done: dict[str, asyncio.Event] = field(default_factory=dict)
    legs_in: dict[str, asyncio.Event] = field(default_factory=dict)  # StasisStart seen
    agent_leg: str | None = None  # the leg that answered
    hold: str | None = None
    talk: str | None = None
    playback: str | None = None  # the position prompt playing, stopped on answer
    announcements: int = 0
    context: Mapping[str, str] = field(default_factory=dict)  # the IVR's hand-off
    arrived: float = 0.0  # monotonic: when it came to this node's queue
    held: bool = False  # the agent put the caller on hold (music; the agent stays)
    # the utility three-way call (rule H-6; hotline/queue/conference.py)
    utility_leg: str | None = None  # the duty line in the talk bridge
    utility_since: float = 0.0  # monotonic: when it was put through
    utility_attempts: list[Any] = field(default_factory=list)  # conference.Attempt, in order
    extra_legs: set[str] = field(default_factory=set)  # every duty line rung for this call
    agent_left: bool = False  # the agent hung up; citizen and utility talk on
    recording: str | None = None  # the conference's recording on the switch (its name)
    pending: list[Event] = field(default_factory=list)  # events handed back, before the queue

    @property
    def agent_id(self) -> str | None:
        offer = self.offers.get(self.agent_leg or "")
        return offer.agent_id if offer is not None else None

    def deliver(self, event: Event) -> None:
        self.events.put_nowait(event)

    async def next(self, timeout: float) -> Event | None:
        if self.pending:
            return self.pending.pop(0)
        try:
            return await asyncio.wait_for(self.events.get(), max(0.0, timeout))
        except TimeoutError:
            return None

    def leg_gone(self, leg: str) -> None:
        self.legs_done.setdefault(leg, asyncio.Event()).set()


@dataclass(frozen=True, slots=True)
class Ringing:
    """An agent's phone started ringing for a caller (for the agent's screen pop)."""

    call_id: str
    agent_id: str
    offer_id: str
    caller: str  # the number in clear: agents are office staff (rule Y-1)
    context: Mapping[str, str]  # the IVR's hand-off: type, priority, utility, ticket, path
    waited: float  # seconds since the caller came to the queue


class QueueCalls:
    def __init__(
        self,
        ari: AriPort,
        app: str,
        service: QueueService,
        settings: QueueSettings,
        clock: Clock,
    ) -> None:
        self.ari, self.app, self.service, self.cfg, self.clock = ari, app, service, settings, clock
        self.calls: dict[str, QueueCall] = {}
        self.stasis: Stasis | None = None
        self.leg_enters = LEG_ENTERS
        self.ringing: list[Callable[[Ringing], None]] = []  # the softphone bridge's pops
        self.conferences: Conferences | None = None  # the utility three-way call (H-6)
        # three-way calls whose node stopped, watched here: call id -> utility leg -> number
        self.orphans: dict[str, dict[str, str]] = {}

    def roles(self) -> dict[str, RoleHandler]:
        return {
            "queue": self.caller,
            "agent": self.agent,
            "utility": self.utility,
            "snoop": self.utility,  # the conference's recording channel: the call's too
        }

    def bind(self, stasis: Stasis) -> None:
        self.stasis = stasis
        self.service.control = self
        stasis.on_connect.append(self.rebuild)

    async def rebuild(self) -> None:
        """After a (re)connect — Asterisk replays nothing: bring the queue back to what
        Asterisk has (an agent ringing or talking on a leg that is gone goes back to a true
        state, a waiting caller who is gone is an abandon), and delete the queue's bridges
        that no caller here holds any more (left by a node that stopped)."""
        channels = await self.ari.get("/channels") or []
        live = {str(c["id"]) for c in channels if c.get("id")}
        placing = {leg for call in self.calls.values() for leg in call.offers}
        await self.service.reconcile(live | placing | set(self.calls), RECONCILE_GRACE)
        # a live node's bridge is its own, even empty or half-filled for a moment
        run = await self.stasis.run_by_live_nodes() if self.stasis is not None else set()
        seen: set[str] = set()
        for bridge in await self.ari.get("/bridges") or []:
            ident = str(bridge.get("id", ""))
            kind, _, call_id = ident.partition("-")
            if kind not in ("hold", "talk") or call_id in self.calls or call_id in run:
                continue
            left = [str(c) for c in bridge.get("channels") or []]
            if any(c in run for c in left):
                continue
            if kind == "talk" and (call_id in self.orphans or _utility_legs(call_id, left)):
                seen.add(call_id)
                await self._orphan_conference(call_id, left, ident)
                continue
            if kind == "talk" and len(left) == 1:  # its node stopped and one side hung up
                log.warning("queue: %s alone in %s (its node stopped); hung up", left[0], ident)
                await self._hang_up(left[0])
                left = []
            if not left:
                log.warning("queue: bridge %s left behind; deleted", ident)
                with contextlib.suppress(AriError):
                    await self.ari.delete(f"/bridges/{ident}")
        for call_id in set(self.orphans) - seen:  # its bridge is gone: everyone hung up
            await self._orphan_ended(call_id, set())

    async def _orphan_conference(self, call_id: str, left: list[str], bridge: str) -> None:
        """A three-way call whose node stopped goes on (rule H-6); this node watches it: the
        utility legs that end are logged, the citizen's end ends the others, and the recording
        goes to the ticket when it is over."""
        legs = _utility_legs(call_id, left)
        if call_id not in self.orphans:
            log.warning("queue: the three-way call %s goes on without its node; watched", call_id)
        known = self.orphans.setdefault(call_id, {})
        for leg in legs:
            if leg not in known:
                channel = await self.ari.get(f"/channels/{leg}") or {}
                name = str(channel.get("name") or "")
                known[leg] = name.rsplit("-", 1)[0] if name.count("-") >= 2 else name
        if call_id not in left or len(left) == 1:  # the citizen hung up, or is alone now
            for ident in left:
                await self._hang_up(ident)
            with contextlib.suppress(AriError):
                await self.ari.delete(f"/bridges/{bridge}")
            await self._orphan_ended(call_id, set())
            return
        await self._orphan_ended(call_id, set(legs), final=False)

    async def _orphan_ended(self, call_id: str, live: set[str], final: bool = True) -> None:
        known = self.orphans.get(call_id, {})
        now = self.clock.monotonic()
        for leg in [x for x in known if x not in live]:
            number = known.pop(leg)
            self.service.log.add(
                [QueueEvent(now, call_id, "NONE", "UTILITYEND", (number, leg, "completed"))]
            )
        if not final:
            return
        self.orphans.pop(call_id, None)
        name = f"conf-{call_id}"
        for where in ("stored", "live"):
            try:
                await self.ari.get(f"/recordings/{where}/{name}")
            except AriError:
                continue
            if self.conferences is not None:
                for hook in self.conferences.recorded:
                    hook(call_id, name)
            break

    # -- the service's call control ----------------------------------------------------------
    @property
    def node(self) -> str:
        return self.service.node

    async def ring(self, offer: OfferDecision) -> None:
        if offer.node and offer.node != self.node:
            return  # another node runs this caller: it rings the agent (see sync)
        call = self.calls.get(offer.call_id)
        if call is None or self.stasis is None:
            raise AriError(404, f"caller {offer.call_id} is not here")
        if offer.offer_id in call.offers:
            return  # placed already (by the outcome or by a sync)
        leg = offer.offer_id
        call.offers[leg] = offer
        call.legs_done.setdefault(leg, asyncio.Event())
        entered = call.legs_in.setdefault(leg, asyncio.Event())
        self.stasis.own(leg, call)  # before it exists: no event of it is missed
        variables = {"HOTLINE_CALL": offer.call_id, "HOTLINE_AGENT": offer.agent_id}
        if call.caller:  # agents are office staff and see the number (rule Y-1)
            variables["CALLERID(num)"] = call.caller
        try:
            await self.ari.post(
                "/channels/create",
                endpoint=f"PJSIP/{offer.extension}",
                app=self.app,
                appArgs=f"agent,{offer.call_id}",
                channelId=leg,
                originator=offer.call_id,
                body={"variables": variables},
            )
        except AriError as exc:
            if exc.status == 409:  # this offer's leg exists already: it is ringing
                log.warning("queue: offer %s placed twice; the second refused", leg)
                return
            raise
        # a dial before the new channel is in the application is a 409 "not in Stasis"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(entered.wait(), self.leg_enters)
        timeout = math.ceil(self.cfg.ring_timeout) + 5  # the service ends it first
        await self.ari.post(f"/channels/{leg}/dial", caller=offer.call_id, timeout=timeout)
        rung = Ringing(
            offer.call_id,
            offer.agent_id,
            leg,
            call.caller,
            call.context,
            max(0.0, self.clock.monotonic() - call.arrived),
        )
        for hook in self.ringing:
            try:
                hook(rung)
            except Exception:
                log.exception("queue: a ringing hook failed on %s", leg)

    async def cancel(self, offer: OfferDecision) -> None:
        if offer.node and offer.node != self.node and offer.call_id not in self.calls:
            return  # the node that runs the caller hangs its leg up (see sync)
        await self._hang_up(offer.offer_id)

    async def sync(self) -> None:
        """For the callers this node runs: ring the offers another node decided, hang up the
        legs whose offer another node ended (ring time-out, a reconcile). With one node the
        outcomes did this already and nothing changes."""
        mine = [c for c in self.calls.values() if c.talk is None]
        if not mine:
            return
        offers = await self.service.offers_for(c.call_id for c in mine)
        for call in mine:
            if call.call_id not in offers:
                continue
            current = offers[call.call_id]
            if current is not None and current.offer_id not in call.offers:
                self.service.background.submit(
                    self.service.ring_or_decline(self, current), f"ring {current.offer_id}"
                )
            for leg in list(call.offers):
                ended = current is None or leg != current.offer_id
                if ended and leg != call.agent_leg and not call.legs_done[leg].is_set():
                    await self._hang_up(leg)

    async def run_sync(self, interval: float = 0.2, rebuild_every: float = 5.0) -> None:
        """Offers decided on other nodes reach this node's callers within ``interval``; every
        ``rebuild_every`` seconds the queue is brought back to what Asterisk has (a stopped
        node's calls end in the model when their channels do)."""
        next_rebuild = self.clock.monotonic() + rebuild_every
        while True:
            try:
                await self.sync()
                if self.clock.monotonic() >= next_rebuild:
                    next_rebuild = self.clock.monotonic() + rebuild_every
                    await self.rebuild()
            except Exception as exc:
                log.warning("queue: sync failed (%s)", type(exc).__name__)
            await self.clock.sleep(interval)

    async def _hang_up(self, channel_id: str) -> None:
        with contextlib.suppress(AriError):  # 404: gone already
            await self.ari.delete(f"/channels/{channel_id}")

    # -- the agent leg ---------------------------------------------------------------------
    async def agent(self, stasis: Stasis, channel: Event, args: list[str]) -> None:
        """An agent leg entered the application: its events are its caller's; wait for its end."""
        await self._leg(stasis, channel, args, "agent")

    async def utility(self, stasis: Stasis, channel: Event, args: list[str]) -> None:
        """A utility's duty line rung for a three-way call (or the snoop that records it)."""
        await self._leg(stasis, channel, args, "utility")

    async def _leg(self, stasis: Stasis, channel: Event, args: list[str], role: str) -> None:
        leg = str(channel["id"])
        call = self.calls.get(args[0] if args else "")
        placed = call is not None and leg in (call.offers if role == "agent" else call.extra_legs)
        if call is None or not placed:
            log.warning("queue: %s leg %s has no call here; hung up", role, leg)
            await self._hang_up(leg)
            return
        stasis.own(leg, call)
        call.legs_in.setdefault(leg, asyncio.Event()).set()  # now it may be dialled
        await call.legs_done.setdefault(leg, asyncio.Event()).wait()

    # -- the caller ------------------------------------------------------------------------
    async def caller(self, stasis: Stasis, channel: Event, args: list[str]) -> None:
        call_id = str(channel["id"])
        number = str((channel.get("caller") or {}).get("number") or "")
        call = QueueCall(call_id, number, arrived=self.clock.monotonic())
        self.calls[call_id] = call
        stasis.own(call_id, call)
        try:
            if ADOPTED in args:  # moved here from a node that stopped: it keeps its place
                await self._adopted(call)
                return
            call.context = (
                parse_args(args) or from_snapshot(channel) or await self._variables(call_id)
            )
            await self._stay(call, call.context)
        finally:
            self.calls.pop(call_id, None)
            for leg in call.offers:
                stasis.release(leg)
                if leg != call.agent_leg or call.talk is None:
                    await self._hang_up(leg)
                call.leg_gone(leg)
            for leg in call.extra_legs:  # the duty lines rung for it end with the call
                stasis.release(leg)
                await self._hang_up(leg)
                call.leg_gone(leg)
            if self.conferences is not None:
                self.conferences.finished(call)
            for bridge in (call.hold, call.talk):
                if bridge:
                    with contextlib.suppress(AriError):
                        await self.ari.delete(f"/bridges/{bridge}")

    async def _variables(self, call_id: str) -> dict[str, str]:
        """The IVR's hand-off from the channel's variables (``StasisBroadcast`` passes none)."""

        async def one(key: str, name: str) -> tuple[str, str]:
            try:
                reply = await self.ari.get(f"/channels/{call_id}/variable", variable=name)
            except AriError as exc:
                if exc.status == 404:  # not set
                    return key, ""
                raise
            return key, str((reply or {}).get("value") or "")

        pairs = await asyncio.gather(*(one(k, v) for k, v in HANDOFF.items()))
        return dict(pairs)

    async def _adopted(self, call: QueueCall) -> None:
        try:
            await self.service.adopt(call.call_id)
        except AgentStateError:  # not waiting any more (or never was): the safe path
            log.warning("queue: %s moved here but is not waiting; safe path", call.call_id)
            await self._dead_man(call.call_id, 0)  # the stopped node's time-out must not cut it
            await self.ari.post(f"/channels/{call.call_id}/continue")
            return
        log.info("queue: %s adopted from a stopped node", call.call_id)
        await self._hold(call, adopted=True)
        if await self._wait(call):
            await self._talk(call)

    async def _hold(self, call: QueueCall, adopted: bool = False) -> None:
        cid = call.call_id
        call.hold = f"hold-{cid}"
        try:
            await self.ari.post("/bridges", type="holding", bridgeId=call.hold, name=call.hold)
        except AriError as exc:
            if not adopted and exc.status != 409:  # 409: made already, used again
                raise
            log.info("queue: %s: the stopped node's hold bridge is used (%s)", cid, exc)
        try:
            await self.ari.post(f"/bridges/{call.hold}/addChannel", channel=cid)
        except AriError as exc:
            if not adopted:
                raise
            log.info("queue: %s stays in its hold bridge (%s)", cid, exc)
        try:
            await self.ari.post(f"/bridges/{call.hold}/moh", mohClass=self.cfg.moh_class)
        except AriError as exc:
            log.warning("queue: no music on hold for %s (%s)", cid, exc)
        await self._dead_man(cid, self.cfg.dead_man_seconds)

    async def _stay(self, call: QueueCall, context: Mapping[str, str]) -> None:
        cid = call.call_id
        # in the queue first: an agent is rung while the hold bridge is made (its events wait
        # in the call's inbox until the hold is ready)
        await self.service.enter(
            cid,
            priority=priority_of(context),
            skills=skills_of(context),
            ticket=context.get("ticket") or None,
            masked_caller=mask_phone(call.caller),
        )
        try:
            await self._hold(call)
        except BaseException:
            with contextlib.suppress(Exception):  # out of the queue: the caller's safe path
                await self.service.overflow(cid)
            raise
        if await self.service.staffed() == 0:  # nobody to take it: a voice message
            await self._overflow(call, "no agent on duty")
            return
        while await self._wait(call):
            again = await self._talk(call)
            if again is None:
                return
            await self._requeue(call, again or None)

    async def _requeue(self, call: QueueCall, agent_id: str | None) -> None:
        """A blind transfer to the queue (``None``: any agent) or to one agent: the caller
        waits again, with music, in its hold bridge."""
        cid, context = call.call_id, call.context
        await self.service.enter(
            cid,
            priority=priority_of(context),
            skills=() if agent_id else skills_of(context),
            ticket=context.get("ticket") or None,
            masked_caller=mask_phone(call.caller),
            for_agent=agent_id,
            offers=len(call.offers),
        )
        if not call.held:
            await self._hold(call)
        call.held = False

    async def _dead_man(self, cid: str, seconds: int) -> None:
        await hold_timeout(self.ari, cid, seconds)

    async def _wait(self, call: QueueCall) -> bool:
        """Until an agent answers (True) or the caller leaves the queue (False)."""
        now = self.clock.monotonic
        start = now()
        leave_at = start + self.cfg.max_wait_seconds
        announce_at = start + 1.0  # the first position soon after the transfer prompt
        push_at = start + self.cfg.dead_man_seconds / 3
        while True:
            event = await call.next(min(leave_at, announce_at, push_at) - now())
            if event is None:
                t = now()
                if t >= leave_at:
                    await self._overflow(call, "waited too long")
                    return False
                if t >= push_at:
                    if await self.service.staffed() == 0:  # the last agent left: a message
                        await self._overflow(call, "no agent on duty any more")
                        return False
                    await self._dead_man(call.call_id, self.cfg.dead_man_seconds)
                    push_at = t + self.cfg.dead_man_seconds / 3
                if t >= announce_at:
                    await self._announce(call)
                    announce_at = t + self.cfg.announce_interval
                continue
            outcome = await self._waiting_event(call, event)
            if outcome is not None:
                return outcome

    async def _waiting_event(self, call: QueueCall, event: Event) -> bool | None:
        kind = event.get("type")
        ident = str((event.get("channel") or {}).get("id", ""))
        if kind == RESYNC:
            return await self._resync_waiting(call)
        if ident == call.call_id and kind in CALLER_GONE:
            await self.service.abandon(call.call_id)
            return False
        offer = call.offers.get(ident) or call.offers.get(_dial_peer(event))
        if offer is None:
            return None
        leg = offer.offer_id
        if _answered(event):
            return await self._connect(call, offer)
        if kind in CALLER_GONE or _dial_status(event) in DIAL_FAILED:
            if kind in CALLER_GONE:
                call.leg_gone(leg)
            log.info("queue: %s not taken (%s)", leg, _dial_status(event) or kind)
            await self.service.declined(call.call_id, offer.agent_id, leg)
            if kind not in CALLER_GONE:
                await self._hang_up(leg)
        return None

    async def _resync_waiting(self, call: QueueCall) -> bool | None:
        """The events socket was down: is the caller still there, and did an agent answer?"""
        try:
            await self.ari.get(f"/channels/{call.call_id}")
        except AriError as exc:
            if exc.status == 404:
                await self.service.abandon(call.call_id)
                return False
            raise
        for leg, offer in list(call.offers.items()):
            if call.legs_done[leg].is_set():
                continue
            try:
                state = (await self.ari.get(f"/channels/{leg}") or {}).get("state")
            except AriError as exc:
                if exc.status != 404:
                    raise
                call.leg_gone(leg)
                await self.service.declined(call.call_id, offer.agent_id, leg)
                continue
            if state == "Up":
                return await self._connect(call, offer)
        return None

    async def _connect(self, call: QueueCall, offer: OfferDecision) -> bool | None:
        try:
            await self.service.answered(call.call_id, offer.agent_id)
        except AgentStateError:  # too late: the offer timed out or went to another agent
            log.info("queue: %s answered after its offer ended; hung up", offer.offer_id)
            await self._hang_up(offer.offer_id)
            return None
        cid, leg = call.call_id, offer.offer_id
        call.agent_leg = leg
        if call.playback:  # a prompt playing holds the caller's channel until it ends
            with contextlib.suppress(AriError):
                await self.ari.delete(f"/playbacks/{call.playback}")
            call.playback = None
        await self._dead_man(cid, 0)  # a talking call goes on even if this node stops
        call.talk = f"talk-{cid}"
        await self.ari.post("/bridges", type="mixing", bridgeId=call.talk, name=call.talk)
        await self._leave_hold(call)
        await self.ari.post(f"/bridges/{call.talk}/addChannel", channel=f"{cid},{leg}")
        # the other offers of this call (none in the model's design; a late leg) go
        for other in call.offers:
            if other != leg and not call.legs_done[other].is_set():
                await self._hang_up(other)
        return True

    async def _talk(self, call: QueueCall) -> str | None:
        """Until the call ends (None) or the agent transfers it back to the queue (the agent
        it is for, or "" for any)."""
        leg = call.agent_leg
        assert leg is not None
        while True:
            event = await call.next(60.0)
            if event is None:
                continue
            kind = event.get("type")
            if kind == TRANSFER:
                return await self._transferred(call, leg, event)
            if kind in (CONFERENCE, RESYNC):
                if await self._control(call, leg, event):
                    return None
                continue
            ident = str((event.get("channel") or {}).get("id", ""))
            if kind in CALLER_GONE and await self._gone(call, leg, ident):
                return None

    async def _control(self, call: QueueCall, leg: str, event: Event) -> bool:
        """The utility conference asked for, or a resync; True when the call is over."""
        if event.get("type") == RESYNC:
            return await self._resync_talking(call, leg)
        if self.conferences is None:
            return False
        if await self.conferences.run(call, leg, event):  # the citizen hung up meanwhile
            await self._end_three_way(call, leg, by="caller")
            return True
        return False

    async def _gone(self, call: QueueCall, leg: str, ident: str) -> bool:
        """A channel of a talking call hung up; True when the call is over."""
        if call.utility_leg or call.agent_left:
            return await self._three_way_gone(call, leg, ident)
        if ident not in (call.call_id, leg):
            return False
        by: Literal["caller", "agent"] = "caller" if ident == call.call_id else "agent"
        await self.service.ended(call.call_id, by=by)
        if by == "agent":
            call.leg_gone(leg)
            await self._hang_up(call.call_id)
        else:
            await self._hang_up(leg)
        return True

    async def _three_way_gone(self, call: QueueCall, leg: str, ident: str) -> bool:
        """A party of a three-way call hung up; True when the call is over. The agent may
        leave (citizen and utility talk on); the call ends with the citizen, or with the
        utility once the agent has left."""
        utility = call.utility_leg
        if ident == leg and not call.agent_left:
            call.agent_left = True
            log.info("queue: the agent left %s; citizen and utility talk on", call.call_id)
            await self.service.ended(call.call_id, by="agent")
            call.leg_gone(leg)
            return False
        if utility is not None and ident == utility:
            call.utility_leg = None
            call.leg_gone(utility)
            if self.conferences is not None:
                self.conferences.ended(call, utility, self.clock.monotonic() - call.utility_since)
            if call.agent_left:
                await self._hang_up(call.call_id)
                return True
            return False
        if ident == call.call_id:
            await self._end_three_way(call, leg, by="caller")
            return True
        return False

    async def _end_three_way(self, call: QueueCall, leg: str, by: Literal["caller"]) -> None:
        utility = call.utility_leg
        if utility is not None:
            call.utility_leg = None
            if self.conferences is not None:
                self.conferences.ended(call, utility, self.clock.monotonic() - call.utility_since)
            await self._hang_up(utility)
        if not call.agent_left:
            await self.service.ended(call.call_id, by=by)
            await self._hang_up(leg)

    async def conference(self, call_id: str, utility: str, ticket: str = "") -> None:
        """The agent asks for the utility's duty line (rule H-6): see conference.py."""
        call = self._talking(call_id)
        if self.conferences is None:
            raise AgentStateError("no_directory", "no utility duty directory on this node")
        if call.utility_leg is not None:
            raise AgentStateError("utility_on_call", "a utility is on this call already")
        try:
            self.conferences.request(call, utility, ticket)
        except ValueError as exc:
            raise AgentStateError("unknown_utility", str(exc)) from None

    async def _transferred(self, call: QueueCall, leg: str, event: Event) -> str | None:
        cid, to = call.call_id, str(event.get("to"))
        log.info("queue: %s transferred by its agent to %s", cid, to)
        await self.service.ended(cid, by="agent")  # the agent's call is over: its wrap-up
        call.leg_gone(leg)
        await self._hang_up(leg)
        talk, call.talk, call.agent_leg = call.talk, None, None
        if to == "operator":
            await self.ari.post(f"/channels/{cid}/variable", variable=EXIT_VARIABLE, value=to)
            if call.held and call.hold:
                with contextlib.suppress(AriError):
                    await self.ari.post(f"/bridges/{call.hold}/removeChannel", channel=cid)
        if talk:
            with contextlib.suppress(AriError):
                await self.ari.delete(f"/bridges/{talk}")
        if to == "operator":
            await self.ari.post(f"/channels/{cid}/continue")
            return None
        return str(event.get("agent") or "")

    # -- the agent's controls (the softphone bridge) -------------------------------------------
    def _talking(self, call_id: str) -> QueueCall:
        call = self.calls.get(call_id)
        if call is None or call.talk is None:
            raise AgentStateError("not_talking", f"{call_id} is not a call in progress here")
        return call

    async def hold(self, call_id: str) -> None:
        """The caller to its holding bridge with music; the agent stays in the talk bridge."""
        call = self._talking(call_id)
        if call.held:
            return
        assert call.talk is not None
        call.held = True
        await self.ari.post(f"/bridges/{call.talk}/removeChannel", channel=call_id)
        call.hold = f"hold-{call_id}"
        with contextlib.suppress(AriError):  # made already (an earlier hold): used again
            await self.ari.post("/bridges", type="holding", bridgeId=call.hold, name=call.hold)
        await self.ari.post(f"/bridges/{call.hold}/addChannel", channel=call_id)
        with contextlib.suppress(AriError):
            await self.ari.post(f"/bridges/{call.hold}/moh", mohClass=self.cfg.moh_class)

    async def unhold(self, call_id: str) -> None:
        call = self._talking(call_id)
        if not call.held:
            return
        assert call.talk is not None
        await self._leave_hold(call)
        await self.ari.post(f"/bridges/{call.talk}/addChannel", channel=call_id)
        call.held = False

    async def _leave_hold(self, call: QueueCall) -> None:
        """The caller out of its holding bridge, which goes (gone already: nothing)."""
        if call.hold:
            with contextlib.suppress(AriError):
                await self.ari.post(f"/bridges/{call.hold}/removeChannel", channel=call.call_id)
            with contextlib.suppress(AriError):
                await self.ari.delete(f"/bridges/{call.hold}")
            call.hold = None

    async def transfer(self, call_id: str, to: str, agent_id: str | None = None) -> None:
        """A blind transfer: to another agent (waits for that agent), back to the queue, or
        to the operator (the dialplan's operator line)."""
        if to not in TRANSFER_TARGETS or (to == "agent") != bool(agent_id):
            raise AgentStateError("bad_transfer", "to an agent (with its id), queue or operator")
        self._talking(call_id).deliver({"type": TRANSFER, "to": to, "agent": agent_id})

    async def _resync_talking(self, call: QueueCall, leg: str) -> bool:
        gone = []
        for ident in (call.call_id, leg):
            try:
                await self.ari.get(f"/channels/{ident}")
            except AriError as exc:
                if exc.status != 404:
                    raise
                gone.append(ident)
        if not gone:
            return False
        by: Literal["caller", "agent"] = "caller" if call.call_id in gone else "agent"
        await self.service.ended(call.call_id, by=by)
        await self._hang_up(leg if by == "caller" else call.call_id)
        return True

    async def _announce(self, call: QueueCall) -> None:
        place = await self.service.position(call.call_id)
        if place is None:
            return
        position, wait = place
        if position == 1:
            prompts = ["queue_next"]
        elif position <= 31:
            prompts = ["queue_ahead", f"n_{position - 1}", "queue_callers"]
        else:
            prompts = ["queue_many"]
        minutes = math.ceil(wait / 60) if math.isfinite(wait) else 0
        if position > 1 and 1 <= minutes <= 31:
            prompts += ["queue_wait", f"n_{minutes}", "queue_minutes"]
        media = ",".join(f"sound:hotline/{p}" for p in prompts)
        call.announcements += 1
        call.playback = f"pos-{call.call_id}-{call.announcements}"
        with contextlib.suppress(AriError):
            await self.ari.post(
                f"/channels/{call.call_id}/play", media=media, playbackId=call.playback
            )

    async def _overflow(self, call: QueueCall, why: str) -> None:
        log.info("queue: %s leaves for a voice message (%s)", call.call_id, why)
        await self.service.overflow(call.call_id)
        await self.ari.post(
            f"/channels/{call.call_id}/variable", variable=EXIT_VARIABLE, value="voicemail"
        )
        await self._dead_man(call.call_id, 0)
        if call.hold:
            with contextlib.suppress(AriError):
                await self.ari.post(f"/bridges/{call.hold}/removeChannel", channel=call.call_id)
        await self.ari.post(f"/channels/{call.call_id}/continue")


def _utility_legs(call_id: str, channels: list[str]) -> list[str]:
    return [c for c in channels if c.startswith(f"utility-{call_id}-")]


def _dial_status(event: Event) -> str:
    return str(event.get("dialstatus") or "") if event.get("type") == "Dial" else ""


def _dial_peer(event: Event) -> str:
    return str((event.get("peer") or {}).get("id", "")) if event.get("type") == "Dial" else ""


def _answered(event: Event) -> bool:
    if event.get("type") == "Dial":
        return event.get("dialstatus") == "ANSWER"
    if event.get("type") == "ChannelStateChange":
        return (event.get("channel") or {}).get("state") == "Up"
    return False
