"""Call control across nodes on the real Redis: a console's node asks, the node that runs the
call (its call control over the fake Asterisk) does it and answers; its refusal comes back with
its code; a call no node runs is ``call_elsewhere`` once the wait is over."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from hotline.softphone_bridge import remote
from hotline.softphone_bridge.protocol import ProtocolError
from hotline.softphone_bridge.remote import RemoteControl
from tests.unit.queue.test_queue_calls import CALL, a_world, talking


async def test_the_node_that_runs_the_call_holds_it_for_a_console_on_another(
    redis: tuple[Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, prefix = redis
    monkeypatch.setattr(remote, "ANSWER_WITHIN", 0.5)
    async with a_world() as runs, a_world() as asks:
        await talking(runs)
        here = RemoteControl(client, prefix, "n1", asks.calls)  # the console's node
        there = RemoteControl(client, prefix, "n2", runs.calls)  # the caller's node
        listening = [asyncio.create_task(r.run()) for r in (here, there)]
        try:
            for r in (here, there):
                await asyncio.wait_for(r.listening.wait(), 5)
            runs.fake.requests.clear()
            await here.ask("hold", CALL, {})
            held = [(r.method, r.path) for r in runs.fake.requests]
            assert ("POST", f"/bridges/hold-{CALL}/addChannel") in held
            assert asks.fake.requests == []  # nothing asked of the other node's switch
            await here.ask("unhold", CALL, {})
            assert ("POST", f"/bridges/talk-{CALL}/addChannel") in [
                (r.method, r.path) for r in runs.fake.requests
            ]
            with pytest.raises(ProtocolError) as refused:  # the caller's node says no
                await here.ask("transfer", CALL, {"to": "agent"})
            assert refused.value.code == "bad_transfer"
            with pytest.raises(ProtocolError) as nobody:
                await here.ask("hold", "a-call-nobody-runs", {})
            assert nobody.value.code == "call_elsewhere"
        finally:
            for task in listening:
                task.cancel()
            await asyncio.gather(*listening, return_exceptions=True)
