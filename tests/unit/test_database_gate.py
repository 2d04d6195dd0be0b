"""The API's gate on the database: 503 at once while it is down, and a request in flight when
it freezes ends then — a write saying its outcome is unknown."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline import ops
from hotline import web as edge
from hotline.appkeys import HEALTH
from hotline.clock import FixedClock
from hotline.health import Dependencies

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class Database:
    def __init__(self) -> None:
        self.up = True

    async def probe(self) -> None:
        if not self.up:
            raise TimeoutError


async def client_for(health: Dependencies) -> TestClient:  # type: ignore[type-arg]
    async def hangs(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)  # a query on a frozen database
        return web.json_response({})

    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"tickets": []})

    app = web.Application()
    app[HEALTH] = health
    edge.setup(app)
    app.middlewares.append(ops.database_gate)
    app.router.add_get("/api/v1/slow", hangs)
    app.router.add_post("/api/v1/slow", hangs)
    app.router.add_get("/api/v1/tickets", fine)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_requests_in_flight_end_when_the_database_is_found_down() -> None:
    db = Database()
    health = Dependencies(FixedClock(T0), timeout=0.1)
    health.add("database", db.probe)
    await health.probe_all()
    client = await client_for(health)
    try:
        assert (await client.get("/api/v1/tickets")).status == 200
        read = asyncio.ensure_future(client.get("/api/v1/slow"))
        write = asyncio.ensure_future(client.post("/api/v1/slow", json={}))
        await asyncio.sleep(0.1)
        db.up = False
        started = time.monotonic()
        await health.probe_all()  # the watch finds it down
        answers = [await read, await write]
        elapsed = time.monotonic() - started
        assert [r.status for r in answers] == [503, 503]
        assert [r.headers.get("Retry-After") for r in answers] == ["5", "5"]
        codes = [(await r.json())["error"]["code"] for r in answers]
        assert codes == ["database_unavailable", "outcome_unknown"]  # the write may be stored
        assert elapsed < 5  # ended by the watch, not by the handler's hour
        # and while it stays down, at once
        later = await client.get("/api/v1/tickets")
        assert later.status == 503
        assert (await later.json())["error"]["code"] == "database_unavailable"
        db.up = True
        await health.probe_all()
        assert (await client.get("/api/v1/tickets")).status == 200
    finally:
        await client.close()


async def test_readiness_and_liveness_are_not_gated() -> None:
    db = Database()
    db.up = False
    health = Dependencies(FixedClock(T0), timeout=0.1)
    health.add("database", db.probe)
    await health.probe_all()
    client = await client_for(health)
    try:
        for path in ("/healthz", "/readyz"):
            response = await client.get(path)
            assert response.status == 404  # not routed in this app, but not refused with 503
    finally:
        await client.close()
