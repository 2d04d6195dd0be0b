"""The bridge over the in-process queue and outbox: the pop of the agent's current call is found
among the kept messages when another node made it, however many messages came since."""

from __future__ import annotations

from hotline.clock import SystemClock
from hotline.queue.acd import AcdConfig, Priority
from hotline.queue.log import QueueLog
from hotline.queue.presence import MemoryPresence
from hotline.queue.service import QueueService
from hotline.queue.store import MemoryQueueStore
from hotline.softphone_bridge.bridge import Bridge
from hotline.softphone_bridge.outbox import MemoryOutbox


async def test_the_current_pop_made_on_another_node_is_found_among_the_kept_messages() -> None:
    clock = SystemClock()
    queue = QueueService(MemoryQueueStore(AcdConfig()), QueueLog(None, clock, "n1"), clock)
    outbox = MemoryOutbox()  # keeps the last 200
    bridge = Bridge(queue, MemoryPresence(), outbox, clock)
    try:
        await queue.login("a1", "8001", {})
        for n in range(250):  # a day's messages: more than a resume from 0 would give
            await outbox.publish("a1", {"type": "agent_state", "n": n})
        await outbox.publish("a1", {"type": "pop", "call": "old", "phase": "ended"})
        await queue.enter("c1", priority=Priority.NORMAL)  # offered to a1: ringing
        await outbox.publish("a1", {"type": "pop", "call": "c1", "phase": "ringing"})  # node n2
        await outbox.publish("a1", {"type": "agent_state", "state": "ringing"})
        state = await bridge.current("a1")
        assert state["state"] == "ringing" and state["call"] == "c1"
        assert state["pop"]["call"] == "c1" and state["pop"]["seq"] == 252
        await queue.abandon("c1")
        assert (await bridge.current("a1"))["pop"] is None  # no call: no pop
    finally:
        await bridge.close()
        await queue.close()
