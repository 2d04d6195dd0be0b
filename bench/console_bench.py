"""Screen-pop latency (issue 11): from the offer's ring to the pop received by the agent's
console, with 2,000 agent sockets connected to one backend node, against a baseline of 20.

The backend node runs in a child process — the real aiohttp application (``build_app``) on a
fresh PostgreSQL database with ``--agents`` agent users. This process connects that many
consoles (``hello`` with each agent's token, over real WebSockets on loopback). The child then
plays the queue's ringing hook (``Bridge.ringing``, what ``QueueCalls`` calls once the agent's
leg is dialled) ``--pops`` times at ``--rate`` per second, for agents taken in turn, stamping
each; every pop does what a real one does — the caller's tickets read from PostgreSQL and the
identity access written (rule Y-1) — and goes out through the agent's outbox. Latency = the
pop received here - the stamp (one clock: the same machine). The baseline is the same run with
``--baseline`` consoles connected, in the same run, on the same backend process (after 50
pops that warm its database pool up, not counted).

    .venv/bin/python bench/console_bench.py [--agents 2000] [--baseline 20] [--pops 1000]
        [--rate 50] [--redis]

``--redis``: the backend as a node of several — the queue and the consoles' outbox in Redis
(each message numbered, kept and published by a Lua script, heard back over pub/sub).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from hotline.ticketing.model import Role  # noqa: E402
from hotline.ticketing.users import add_user  # noqa: E402
from tests.backend import free_port, hotline  # noqa: E402
from tests.conftest import REDIS_URL, fresh_database  # noqa: E402


# -- the backend node (child process) -----------------------------------------------------------
def node(url: str, port: int, conn: Connection, redis: str) -> None:
    asyncio.run(_node(url, port, conn, redis))


async def _node(url: str, port: int, conn: Connection, redis: str) -> None:
    from aiohttp import web

    from hotline.app import build_app
    from hotline.config.settings import load_settings
    from hotline.queue.calls import Ringing
    from hotline.softphone_bridge.ws import BRIDGE

    env = {
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_SERVER_HTTP_PORT": str(port),
        "HOTLINE_SERVER_AGI_PORT": str(free_port()),
        "HOTLINE_LOG_LEVEL": "WARNING",
    }
    if redis:  # the node of several: the queue and the consoles' outbox in Redis
        env |= {
            "HOTLINE_REDIS_URL": redis,
            "HOTLINE_REDIS_KEY_PREFIX": f"bench:{port}:",
            "HOTLINE_QUEUE_STORE": "redis",
        }
    app = build_app(load_settings(env=env))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    conn.send("ready")
    loop = asyncio.get_running_loop()
    while True:
        order = await loop.run_in_executor(None, conn.recv)
        if order == "stop":
            break
        agents, count, rate, tag = order
        bridge = app[BRIDGE]
        stamps: list[tuple[str, float]] = []
        cpu = time.process_time()
        start = time.perf_counter()
        for i in range(count):
            call_id = f"{tag}-{i}"
            context = {"type": "help", "priority": "0", "path": "menu:2"}
            stamp = time.time()
            bridge.ringing(
                Ringing(
                    call_id,
                    agents[i % len(agents)],
                    f"offer-{call_id}-1",
                    f"139{i:08}",
                    context,
                    3.0,
                )
            )
            stamps.append((call_id, stamp))
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        await bridge.background.drain()
        conn.send((stamps, time.process_time() - cpu, time.perf_counter() - start))
    await runner.cleanup()


# -- the consoles (this process) ----------------------------------------------------------------
class Consoles:
    def __init__(self, url: str) -> None:
        self.url = url
        self.received: dict[str, float] = {}
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []

    async def connect(self, http: aiohttp.ClientSession, tokens: list[str]) -> None:
        async def one(token: str) -> None:
            ws = await http.ws_connect(self.url, max_msg_size=0)
            await ws.send_str(json.dumps({"type": "hello", "token": token}))
            for _ in range(2):  # welcome, state
                first = json.loads((await ws.receive(timeout=30)).data)
                assert first["type"] in ("welcome", "state"), first
            self.sockets.append(ws)
            self.readers.append(asyncio.create_task(self.read(ws)))

        for at in range(0, len(tokens), 50):  # 50 handshakes at a time
            await asyncio.gather(*(one(t) for t in tokens[at : at + 50]))

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            body = json.loads(message.data)
            if body.get("type") == "pop":
                self.received.setdefault(body["call"], time.time())

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def forget(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


async def phase(
    conn: Connection, consoles: Consoles, agents: list[str], count: int, rate: float, tag: str
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    conn.send((agents, count, rate, tag))
    stamps, cpu, wall = await loop.run_in_executor(None, conn.recv)
    deadline = time.monotonic() + 30
    while len([c for c, _ in stamps if c in consoles.received]) < count:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    lat = [consoles.received[c] - t for c, t in stamps if c in consoles.received]
    return {"n": len(lat), "count": count, "lat": lat, "cpu": cpu / wall}


async def main(args: argparse.Namespace) -> None:
    async with fresh_database() as url:
        env = {"HOTLINE_DATABASE_URL": url}
        migrated = hotline("db", "upgrade", env=env)
        assert migrated.returncode == 0, migrated.stderr
        engine = create_async_engine(url)
        users = [await add_user(engine, f"坐席{n:04}", Role.AGENT) for n in range(args.agents)]
        await engine.dispose()
        port = free_port()
        parent, child = multiprocessing.Pipe()
        redis = REDIS_URL if args.redis else ""
        proc = multiprocessing.get_context("spawn").Process(
            target=node, args=(url, port, child, redis)
        )
        proc.start()
        try:
            assert parent.recv() == "ready"
            consoles = Consoles(f"ws://127.0.0.1:{port}/api/v1/console/socket")
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                ids = [u for u, _ in users]
                tokens = [t for _, t in users]
                await consoles.connect(http, tokens[: args.baseline])
                await phase(parent, consoles, ids[: args.baseline], 50, args.rate, "warm")  # pools
                base = await phase(
                    parent, consoles, ids[: args.baseline], args.pops, args.rate, "base"
                )
                t = time.perf_counter()
                await consoles.connect(http, tokens[args.baseline :])
                connected = time.perf_counter() - t
                full = await phase(parent, consoles, ids, args.pops, args.rate, "full")
                await consoles.close()
            parent.send("stop")
        finally:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
            if redis:
                await forget(redis, f"bench:{port}:")
    where = "the Redis outbox (several nodes)" if args.redis else "the in-process outbox"
    print(
        f"screen pop: ring -> pop received at the console, {args.pops} pops at {args.rate:g}/s "
        f"(each reads the caller's tickets and writes the identity access in PostgreSQL), "
        f"through {where}"
    )
    rows = ((f"{args.baseline} consoles (baseline)", base), (f"{args.agents} consoles", full))
    for name, r in rows:
        print(
            f"  {name:24} p50 {ms(r['lat'], 50):7.2f} ms  p95 {ms(r['lat'], 95):7.2f} ms  "
            f"p99 {ms(r['lat'], 99):7.2f} ms  max {max(r['lat']) * 1000:7.2f} ms  "
            f"received {r['n']}/{r['count']}  backend CPU {r['cpu'] * 100:3.0f}%"
        )
    print(f"  {args.agents - args.baseline} more consoles connected in {connected:.1f} s")
    b, f = base["lat"], full["lat"]
    print(
        f"  {args.agents} / {args.baseline}: p50 {ms(f, 50) / ms(b, 50):.2f}x  "
        f"p95 {ms(f, 95) / ms(b, 95):.2f}x  p99 {ms(f, 99) / ms(b, 99):.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--baseline", type=int, default=20)
    parser.add_argument("--pops", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--redis", action="store_true", help="the backend as one of several nodes")
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    asyncio.run(main(parser.parse_args()))
