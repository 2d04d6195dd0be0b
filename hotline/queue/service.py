"""The queue service: drives the pure ACD model (:mod:`hotline.queue.acd`) through a store and
applies what it decides.

Every change — an agent's command, a call entering, answered, declined, abandoned, ended —
goes through :meth:`QueueService.change`: the store runs it and a dispatch as one atomic step
(:class:`~hotline.queue.store.QueueStore`), and the outcome is applied here: queue log records
to the :class:`~hotline.queue.log.QueueLog`, offers to the call control's ``ring``, cancels to
its ``cancel``, agent changes to the listeners (the console's socket, later; the metrics now).
Call control (ARI, :mod:`hotline.queue.calls`) is a port: the service never sees ARI JSON.

Time. One task (:meth:`QueueService.run`) sleeps on the injected clock until the model's next
deadline — a ring time-out, a wrap-up's end, a skill widening — or until a change pokes it, and
then runs ``expire``, ``tick`` and ``dispatch``. The model's ``now`` is the clock's wall time
in seconds: the same on every node.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Protocol, TypeVar

from hotline.background import Background
from hotline.clock import Clock
from hotline.queue.acd import (
    Acd,
    AgentChange,
    AgentView,
    OfferDecision,
    Outcome,
    Priority,
    Snapshot,
)
from hotline.queue.agent import (
    AgentStateError,
    Command,
    EndWrapUp,
    Login,
    Logout,
    LogoutAfterCall,
    Pause,
    PauseAfterCall,
    Ready,
    Unpause,
)
from hotline.queue.log import QueueLog
from hotline.queue.metrics import QueueMetrics
from hotline.queue.store import Change, QueueStore

log = logging.getLogger(__name__)
T = TypeVar("T")
IDLE_WAKE = 60.0  # with nothing due, look again after this long anyway


class CallControl(Protocol):
    """What the queue asks of the telephony side."""

    async def ring(self, offer: OfferDecision) -> None: ...

    async def cancel(self, offer: OfferDecision) -> None: ...


Listener = Callable[[AgentChange], None]


def merge(*outcomes: Outcome) -> Outcome:
    return Outcome(
        tuple(r for o in outcomes for r in o.records),
        tuple(x for o in outcomes for x in o.offers),
        tuple(x for o in outcomes for x in o.cancels),
        tuple(x for o in outcomes for x in o.changes),
        tuple(x for o in outcomes for x in o.calls),
    )


class QueueService:
    def __init__(
        self, store: QueueStore, queue_log: QueueLog, clock: Clock, node: str = ""
    ) -> None:
        self.store, self.log, self.clock, self.node = store, queue_log, clock, node
        self.metrics = QueueMetrics(queue_log.queue)
        self.control: CallControl | None = None
        self.listeners: list[Listener] = []
        self.background = Background("queue")
        self._wake = asyncio.Event()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    # -- the one way in --------------------------------------------------------------------
    async def change(self, change: Change) -> Outcome:
        """Run ``change`` and a dispatch as one step of the store; apply the outcome."""

        def step(acd: Acd, now: float) -> Outcome:
            return merge(change(acd, now), acd.dispatch(now))

        outcome = await self.store.apply(step, self._now())
        self.apply(outcome)
        return outcome

    def apply(self, outcome: Outcome) -> None:
        self.log.add(outcome.records)
        self.metrics.count(outcome.records)
        for agent_change in outcome.changes:
            for listener in self.listeners:
                try:
                    listener(agent_change)
                except Exception:
                    log.exception("queue listener failed on %s", agent_change.event)
        control = self.control
        for offer in outcome.cancels:
            if control is not None:
                self.background.submit(control.cancel(offer), f"cancel {offer.offer_id}")
        for offer in outcome.offers:
            if control is None:
                log.error("queue: offer %s but no call control", offer.offer_id)
                continue
            self.background.submit(self.ring_or_decline(control, offer), f"ring {offer.offer_id}")
        self._wake.set()

    async def ring_or_decline(self, control: CallControl, offer: OfferDecision) -> None:
        """Ring the agent; a phone that cannot be rung is declined: the next agent."""
        try:
            await control.ring(offer)
        except Exception as exc:  # the phone cannot be rung: the next agent
            log.warning("queue: ringing %s failed (%s): offered on", offer.offer_id, exc)
            await self.declined(offer.call_id, offer.agent_id, offer.offer_id)

    # -- agents ----------------------------------------------------------------------------
    async def command(self, agent_id: str, event: Command) -> Outcome:
        return await self.change(lambda acd, now: acd.command(agent_id, event, now))

    async def login(self, agent_id: str, extension: str, skills: Mapping[str, int]) -> Outcome:
        return await self.command(agent_id, Login(extension, skills))

    async def ready(self, agent_id: str) -> Outcome:
        return await self.command(agent_id, Ready())

    async def pause(self, agent_id: str, reason: str, *, after_call: bool = False) -> Outcome:
        return await self.command(agent_id, PauseAfterCall(reason) if after_call else Pause(reason))

    async def unpause(self, agent_id: str) -> Outcome:
        return await self.command(agent_id, Unpause())

    async def end_wrap_up(self, agent_id: str) -> Outcome:
        return await self.command(agent_id, EndWrapUp())

    async def logout(self, agent_id: str, *, after_call: bool = False) -> Outcome:
        return await self.command(agent_id, LogoutAfterCall() if after_call else Logout())

    # -- calls -----------------------------------------------------------------------------
    async def enter(
        self,
        call_id: str,
        *,
        priority: Priority,
        skills: Iterable[str] = (),
        ticket: str | None = None,
        masked_caller: str = "",
        for_agent: str | None = None,
        offers: int = 0,
    ) -> Outcome:
        """``for_agent``: a call transferred to that agent; ``offers``: offers the call had
        before (a transferred call's next agent leg gets a new channel id)."""
        wants = tuple(skills)
        return await self.change(
            lambda acd, now: acd.enter(
                call_id,
                now,
                priority=priority,
                skills=wants,
                ticket=ticket,
                masked_caller=masked_caller,
                node=self.node,
                for_agent=for_agent,
                offers=offers,
            )
        )

    async def adopt(self, call_id: str) -> Outcome:
        """This node takes over a waiting caller whose node stopped (it keeps its place)."""
        return await self.change(lambda acd, now: acd.adopt(call_id, self.node, now))

    async def offers_for(self, call_ids: Iterable[str]) -> dict[str, OfferDecision | None]:
        """The offer out for each of these waiting calls (None: none; absent: not waiting)."""
        wanted = frozenset(call_ids)

        def look(acd: Acd, now: float) -> dict[str, OfferDecision | None]:
            return {
                c: (call.offer if (call := acd.waiting_call(c)) else None)
                for c in wanted
                if acd.waiting_call(c) is not None
            }

        return await self.read(look)

    async def answered(self, call_id: str, agent_id: str) -> Outcome:
        return await self.change(lambda acd, now: acd.answered(call_id, agent_id, now))

    async def declined(self, call_id: str, agent_id: str, offer_id: str) -> Outcome | None:
        """The agent leg failed before an answer; nothing if that offer is no longer out."""

        def change(acd: Acd, now: float) -> Outcome:
            current = next((c.offer for c in acd.waiting if c.call_id == call_id), None)
            if current is None or current.offer_id != offer_id:
                return Outcome()
            return acd.declined(call_id, agent_id, now)

        return await self.change(change)

    async def abandon(self, call_id: str) -> Outcome:
        return await self._gone(lambda acd, now: acd.abandon(call_id, now), call_id)

    async def _gone(self, change: Change, call_id: str) -> Outcome:
        """A caller's end that another node (a reconcile) may have recorded first."""
        try:
            return await self.change(change)
        except AgentStateError as exc:
            if exc.code != "no_such_call":
                raise
            log.info("queue: %s had ended already (%s)", call_id, exc.code)
            return Outcome()

    async def overflow(self, call_id: str) -> Outcome:
        return await self.change(lambda acd, now: acd.overflow(call_id, now))

    async def ended(self, call_id: str, by: Literal["caller", "agent"]) -> Outcome:
        return await self._gone(lambda acd, now: acd.ended(call_id, now, by=by), call_id)

    async def reconcile(self, live_channel_ids: Iterable[str], grace: float = 0.0) -> Outcome:
        live = frozenset(live_channel_ids)
        outcome = await self.change(lambda acd, now: acd.reconcile(live, now, grace))
        if outcome.records or outcome.changes:
            log.warning(
                "queue reconciled with Asterisk: %s",
                ", ".join(f"{r.event} {r.call_id}/{r.agent}" for r in outcome.records) or "states",
            )
        return outcome

    # -- figures ---------------------------------------------------------------------------
    async def read(self, look: Callable[[Acd, float], T]) -> T:
        return await self.store.read(look, self._now())

    async def snapshot(self) -> Snapshot:
        return await self.read(lambda acd, now: acd.snapshot(now))

    async def agent(self, agent_id: str) -> AgentView | None:
        return await self.read(lambda acd, now: acd.agent_view(agent_id, now))

    async def staffed(self) -> int:
        return await self.read(lambda acd, now: acd.staffed())

    async def estimated_wait(self, priority: Priority) -> float:
        return await self.read(lambda acd, now: acd.estimated_wait(priority, now))

    async def position(self, call_id: str) -> tuple[int, float] | None:
        """The call's place in line (1: next) and its estimated wait; None: not waiting."""

        def look(acd: Acd, now: float) -> tuple[int, float] | None:
            for i, call in enumerate(acd.waiting, 1):
                if call.call_id == call_id:
                    staffed = acd.staffed()
                    wait = (i - 1) * acd.handle_time / staffed if staffed else math.inf
                    return i, wait
            return None

        return await self.read(look)

    # -- time ------------------------------------------------------------------------------
    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Ring time-outs, wrap-ups and widening, at the model's next deadline."""
        while True:
            await self.tick()
            due = await self.read(lambda acd, now: acd.next_deadline(now))
            delay = IDLE_WAKE if due is None else max(0.0, due - self._now())
            self._wake.clear()
            sleeper = asyncio.ensure_future(self.clock.sleep(min(delay, IDLE_WAKE)))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, waker):
                    task.cancel()

    async def tick(self) -> Outcome:
        def step(acd: Acd, now: float) -> Outcome:
            return merge(acd.expire(now), acd.tick(now), acd.dispatch(now))

        outcome = await self.store.apply(step, self._now())
        if outcome.records or outcome.offers or outcome.cancels or outcome.changes:
            self.apply(outcome)
        return outcome

    async def close(self) -> None:
        await self.background.close(1.0)
