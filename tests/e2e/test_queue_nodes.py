"""Two backend nodes on one Redis share the queue (issue 10): calls are broadcast and claimed,
offers decided on one node are rung by the node that runs the caller, and a node's death
leaves no caller stranded."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hotline.agi.ari import AriClient
from hotline.lab.instance import Lab
from tests.backend import free_port
from tests.conftest import REDIS_URL
from tests.e2e.conftest import LabBackend
from tests.e2e.test_queue import (
    QUICK,
    agent,
    caller,
    direct,
    entered_by_caller,
    phone,
    queue_log,
    told,
    wait_for,
)
from tests.faults import StampedListener

pytestmark = pytest.mark.e2e


def two_nodes(backend: Callable[..., LabBackend]) -> tuple[LabBackend, LabBackend]:
    shared = {
        **QUICK,
        "HOTLINE_REDIS_URL": REDIS_URL,
        "HOTLINE_REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex[:8]}:",
        "HOTLINE_QUEUE_STORE": "redis",
    }
    return tuple(  # type: ignore[return-value]
        backend(
            **shared,
            HOTLINE_SERVER_NODE_ID=node,
            HOTLINE_SERVER_HTTP_PORT=str(free_port()),
            HOTLINE_SERVER_AGI_PORT=str(free_port()),
        )
        for node in ("n1", "n2")
    )


async def test_two_nodes_under_a_burst_of_50_callers_and_10_agents_never_double_assign(
    lab: Lab, backend: Callable[..., LabBackend], database: str, ari: AriClient
) -> None:
    n1, n2 = two_nodes(backend)
    extensions = [f"80{i:02}" for i in range(1, 11)]
    for i, ext in enumerate(extensions):
        agent(n1 if i % 2 else n2, ext)  # logged in through either node: one queue
    seen_together: list[str] = []  # an agent's extension in two talk bridges at once
    done = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        for ext in extensions:
            await stack.enter_async_context(
                phone(lab, ext, answer_after_ms=300, hold_ms=1500, calls=12)
            )
        watcher = asyncio.create_task(watch(ari, done, seen_together))
        callers = [caller(f"9{i:03}") for i in range(50)]

        async def one(i: int, who: str) -> bool:
            await asyncio.sleep(i * 0.05)  # 50 callers in 2.5 s
            return await direct(lab, "12371", who, 90000)

        results = await asyncio.gather(*(one(i, who) for i, who in enumerate(callers)))
        done.set()
        await watcher
    assert all(results), told(n1) + told(n2)

    async def all_completed() -> list[dict[str, Any]]:
        rows = await queue_log(database)
        return rows if sum(r["event"].startswith("COMPLETE") for r in rows) >= 50 else []

    rows = await wait_for(all_completed, timeout=15) or await queue_log(database)
    connects = [r for r in rows if r["event"] == "CONNECT"]
    assert len(connects) == 50, told(n1) + told(n2)  # every caller answered ...
    assert len({r["call_id"] for r in connects}) == 50  # ... once: no call to two agents
    for agent_id in {r["agent"] for r in connects}:  # no agent with two calls at once
        one_call_at_a_time(rows, agent_id)
    assert seen_together == [], seen_together  # and through ARI: no agent in two bridges
    nodes = {r["key"].split(":")[0] for r in await keyed(database) if r["event"] == "ENTERQUEUE"}
    assert nodes == {"n1", "n2"}  # both nodes claimed callers


async def watch(ari: AriClient, done: asyncio.Event, seen_together: list[str]) -> None:
    """Through ARI, until ``done``: any agent extension in two talk bridges at once, or a
    bridge with more than caller and agent, goes into ``seen_together``."""
    while not done.is_set():
        bridges = [b for b in await ari.get("/bridges") if b["id"].startswith("talk-")]
        names = {c["id"]: c["name"] for c in await ari.get("/channels")}
        legs = [names.get(c, "") for b in bridges for c in b["channels"]]
        exts = [n[6:10] for n in legs if n.startswith("PJSIP/80")]
        seen_together.extend(e for e in set(exts) if exts.count(e) > 1)
        seen_together.extend(b["id"] for b in bridges if len(b["channels"]) > 2)
        await asyncio.sleep(0.3)


def one_call_at_a_time(rows: list[dict[str, Any]], agent_id: str) -> None:
    """In the agent's queue log, each CONNECT is followed by that call's COMPLETE."""
    on_a_call = None
    for r in rows:
        if r["agent"] != agent_id:
            continue
        if r["event"] == "CONNECT":
            assert on_a_call is None, (agent_id, on_a_call, r["call_id"])
            on_a_call = r["call_id"]
        elif r["event"].startswith("COMPLETE"):
            assert on_a_call == r["call_id"], (agent_id, on_a_call, r["call_id"])
            on_a_call = None


async def keyed(url: str) -> list[dict[str, Any]]:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.text("SELECT key, call_id, event FROM queue_log ORDER BY id")
            rows = await conn.execute(query)
            return [dict(r) for r in rows.mappings()]
    finally:
        await engine.dispose()


async def test_kill_9_of_one_of_two_nodes_its_waiting_callers_are_answered_by_the_other(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    n1, n2 = two_nodes(backend)
    _, agent_id = agent(n2, "8001")
    creds = lab.credentials()
    callers = [caller(f"71{i:02}") for i in range(6)]
    async with (
        StampedListener("127.0.0.1", lab.lab.ami_port, creds.ami_user, creds.ami_password) as ami,
        # room for more calls than callers: a dead node's offer may ring the phone for nobody
        phone(lab, "8001", answer_after_ms=300, hold_ms=2500, calls=10) as desk,
    ):
        calls = [asyncio.create_task(direct(lab, "12371", who, 70000)) for who in callers]

        async def queued() -> bool:
            rows = await keyed(database)
            on = {r["key"].split(":")[0] for r in rows if r["event"] == "ENTERQUEUE"}
            return len([r for r in rows if r["event"] == "ENTERQUEUE"]) == 6 and "n1" in on

        assert await wait_for(queued, timeout=20), told(n1) + told(n2)
        assert n1.proc is not None
        n1.proc.kill()  # kill -9 with callers waiting on it
        killed = time.monotonic()
        n1.proc.wait(10)
        results = await asyncio.gather(*calls)
        await desk.stop()
        fallbacks = [  # the safe path, or a voice message offered (the queue's overflow)
            (e.get("CallerIDNum"), stamp - killed)
            for stamp, e in zip(ami.stamps, ami.events, strict=True)
            if e.get("UserEvent") in ("HotlineFallback", "HotlineVoicemail")
        ]
    assert all(results)
    rows = await queue_log(database)
    answered = {r["call_id"] for r in rows if r["event"] == "CONNECT"}
    entered = {c: last4 for last4, c in entered_by_caller(rows).items()}
    # every caller was answered (through the surviving node) or reached the safe path
    unanswered = {entered[c] for c in entered if c not in answered}
    reached = {who[-4:] for who, _ in fallbacks if who}
    assert unanswered <= reached, f"{unanswered} {fallbacks}\n{told(n2)}"
    by_node = {(r["event"], r["call_id"]): r["key"].split(":")[0] for r in await keyed(database)}
    left_on_n1 = {c for (e, c), node in by_node.items() if e == "ENTERQUEUE" and node == "n1"}
    taken_on = {c for (e, c), node in by_node.items() if e == "CONNECT" and node == "n2"}
    assert left_on_n1 & taken_on, told(n2)  # the survivor answered callers the dead node had
    assert {r["agent"] for r in rows if r["event"] == "CONNECT"} == {agent_id}
