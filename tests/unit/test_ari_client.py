"""The real ARI adapter against a local HTTP server: query parameters, the JSON body that
carries ``variables``, and errors with their status."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hotline.agi.ari import AriClient
from hotline.errors import AriError


async def test_variables_go_in_the_json_body_and_options_in_the_query() -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []

    async def create(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen.append((request.path, dict(request.query), body))
        assert request.headers["Authorization"] == "Basic dTpw"  # u:p
        return web.json_response({"id": request.query.get("channelId")})

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"message": "Channel not found"}, status=404)

    app = web.Application()
    app.router.add_post("/ari/channels/create", create)
    app.router.add_get("/ari/channels/nope", missing)
    server = TestServer(app)
    await server.start_server()
    try:
        async with AriClient(str(server.make_url("/ari")), "u", "p") as ari:
            reply = await ari.post(
                "/channels/create",
                body={"variables": {"HOTLINE_CALL": "c1"}},
                endpoint="PJSIP/8001",
                app="hotline",
                channelId="offer-c1-1",
            )
            assert reply == {"id": "offer-c1-1"}
            with pytest.raises(AriError) as refused:
                await ari.get("/channels/nope")
    finally:
        await server.close()
    assert seen == [
        (
            "/ari/channels/create",
            {"endpoint": "PJSIP/8001", "app": "hotline", "channelId": "offer-c1-1"},
            {"variables": {"HOTLINE_CALL": "c1"}},
        )
    ]
    assert refused.value.status == 404 and "Channel not found" in str(refused.value)
