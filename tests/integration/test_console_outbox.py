"""The consoles' outbox on the real Redis: two nodes number one agent's messages as one
sequence, every node hears every message, a resume reads what was kept; and two backend
processes on one Redis — a console on one node hears what the other node says of its agent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from redis.asyncio import Redis

from hotline.softphone_bridge.outbox import RedisOutbox
from tests.backend import Backend, free_port, hotline
from tests.conftest import REDIS_URL, fresh_database
from tests.integration.test_agent_api import Client, user
from tests.integration.test_console_socket import receive


async def test_two_nodes_number_one_sequence_and_hear_each_other(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    node_a, node_b = RedisOutbox(client, prefix, keep=5), RedisOutbox(client, prefix, keep=5)
    listening = [asyncio.create_task(o.run()) for o in (node_a, node_b)]
    try:
        await asyncio.wait_for(node_a.listening.wait(), 5)
        await asyncio.wait_for(node_b.listening.wait(), 5)
        heard: list[dict[str, Any]] = []
        node_b.subscribe("a1", heard.append)
        node_b.subscribe("a2", lambda m: heard.append({"wrong agent": m}))
        sent = await asyncio.gather(  # both nodes at once: one sequence, no number twice
            *(
                o.publish("a1", {"type": "agent_state", "n": n})
                for n in range(6)
                for o in (node_a, node_b)
            )
        )
        assert sorted(m["seq"] for m in sent) == list(range(1, 13))
        for _ in range(100):
            if len(heard) == 12:
                break
            await asyncio.sleep(0.02)
        assert [m["seq"] for m in heard] == list(range(1, 13))  # in order, this agent's only
        assert await node_b.last("a1") == 12 and await node_a.last("a2") == 0
        kept = await node_a.since("a1", 8) or []
        assert [m["seq"] for m in kept] == [9, 10, 11, 12]
        assert await node_b.since("a1", 3) is None  # 4..7 no longer kept (keep=5)
        assert await node_b.since("a1", 12) == []
    finally:
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)


async def test_a_console_on_one_node_hears_its_agent_changed_on_the_other() -> None:
    prefix = f"test:{free_port()}:"
    async with fresh_database() as url:
        common = {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_REDIS_URL": REDIS_URL,
            "HOTLINE_REDIS_KEY_PREFIX": prefix,
            "HOTLINE_QUEUE_STORE": "redis",
        }
        assert hotline("db", "upgrade", env=common).returncode == 0
        agent = user(common, "坐席一", "agent")
        nodes = [
            Backend(
                {
                    **common,
                    "HOTLINE_SERVER_NODE_ID": name,
                    "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
                    "HOTLINE_SERVER_AGI_PORT": str(free_port()),
                }
            ).start()
            for name in ("n1", "n2")
        ]
        try:
            one, two = nodes
            assert (
                Client(one).call(agent, "POST", "/api/v1/agents/me/login", {"extension": "8001"})[0]
                == 200
            )
            url_two = two.url.replace("http://", "ws://") + "/api/v1/console/socket"
            async with aiohttp.ClientSession() as http, http.ws_connect(url_two) as ws:
                await ws.send_str(json.dumps({"type": "hello", "token": agent}))
                welcome = await receive(ws, "welcome")
                assert (await receive(ws, "state"))["state"] == "ready"  # one queue, on Redis
                status, _ = Client(one).call(
                    agent, "POST", "/api/v1/agents/me/pause", {"reason": "lunch"}
                )
                assert status == 200
                change = await receive(ws, "agent_state")  # said on n1, heard on n2
                assert (change["state"], change["pause_reason"]) == ("paused", "lunch")
                assert change["seq"] == welcome["seq"] + 1
            # a resume on the other node gets what was missed
            assert Client(two).call(agent, "POST", "/api/v1/agents/me/unpause")[0] == 200
            url_one = one.url.replace("http://", "ws://") + "/api/v1/console/socket"
            async with aiohttp.ClientSession() as http, http.ws_connect(url_one) as ws:
                hello = {"type": "hello", "token": agent, "last_seq": change["seq"]}
                await ws.send_str(json.dumps(hello))
                assert (await receive(ws, "welcome"))["resumed"] is True
                missed = await receive(ws)
                assert (missed["type"], missed["state"]) == ("agent_state", "ready")
                assert missed["seq"] == change["seq"] + 1
        finally:
            for node in nodes:
                node.stop()
            client = Redis.from_url(REDIS_URL)
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
