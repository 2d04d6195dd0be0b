"""A small ARI client (Asterisk REST Interface): REST calls and the events WebSocket.

The resources are specified by Asterisk's own Swagger files (``shared/asterisk-ari``); this
client covers what the hotline uses — channels (answer, play, record, variables, continue,
hang up), playbacks, stored recordings and the ``/events`` stream of a Stasis application.
Credentials go as HTTP basic auth on REST and as ``api_key`` on the WebSocket.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from hotline.errors import AriError

log = logging.getLogger(__name__)


class AriPort(Protocol):
    """What call control needs of Asterisk's REST interface: the real client below, or the
    fake Asterisk of :mod:`hotline.agi.fake_ari` in unit tests. Query parameters go as keyword
    arguments; a JSON body (``variables`` on ``POST /channels``, ``/channels/create`` and
    ``/bridges`` is one) as ``body``. Errors are :class:`AriError` with the status."""

    password: str

    async def request(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None, **params: Any
    ) -> Any: ...

    async def get(self, path: str, **params: Any) -> Any: ...

    async def post(
        self, path: str, *, body: Mapping[str, Any] | None = None, **params: Any
    ) -> Any: ...

    async def delete(self, path: str, **params: Any) -> Any: ...

    async def download(self, path: str) -> bytes: ...

    def events(
        self, app: str, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]: ...


class AriVerbs:
    """GET, POST and DELETE over ``request``: shared by the real client and the fake one."""

    async def request(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None, **params: Any
    ) -> Any:
        raise NotImplementedError

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, **params)

    async def post(self, path: str, *, body: Mapping[str, Any] | None = None, **params: Any) -> Any:
        return await self.request("POST", path, body=body, **params)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.request("DELETE", path, **params)


class AriClient(AriVerbs):
    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 50,
    ) -> None:
        self.url = url.rstrip("/")
        self.max_connections = max_connections  # under Asterisk's sessionlimit (default 100)
        self.user, self.password = user, password
        self._session = session
        self._own = session is None

    async def __aenter__(self) -> AriClient:
        if self._session is None:
            basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Basic {basic}"},  # aiohttp's BasicAuth is deprecated
                timeout=aiohttp.ClientTimeout(total=30),
                connector=aiohttp.TCPConnector(limit=self.max_connections),
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use `async with AriClient(...)`")
        return self._session

    async def request(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None, **params: Any
    ) -> Any:
        query = {k: _param(v) for k, v in params.items() if v is not None}
        json_body = dict(body) if body is not None else None
        async with self.session.request(
            method, self.url + path, params=query, json=json_body
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise AriError(resp.status, _message(text))
            return json.loads(text) if text and resp.content_type == "application/json" else None

    async def download(self, path: str) -> bytes:
        async with self.session.get(self.url + path) as resp:
            if resp.status >= 400:
                raise AriError(resp.status, _message(await resp.text()))
            return await resp.read()

    async def events(
        self, app: str, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The application's events until the socket closes (the caller reconnects).
        ``on_open`` runs once the socket is up: from then on no event of the app is missed."""
        ws_url = self.url.replace("http", "ws", 1) + "/events"
        params = {"app": app, "api_key": f"{self.user}:{self.password}", "subscribeAll": "false"}
        async with self.session.ws_connect(ws_url, params=params, heartbeat=20) as ws:
            if on_open is not None:
                on_open()
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    try:
                        yield json.loads(msg.data)
                    except json.JSONDecodeError:
                        log.warning("ARI: not a JSON event (%d bytes); ignored", len(msg.data))
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break


async def hold_timeout(ari: AriPort, channel_id: str, seconds: int) -> None:
    """Set the channel's absolute time-out ``seconds`` ahead (0: none) — the dead-man switch a
    node keeps pushing while it runs a call; the dialplan's ``T`` is the safe path."""
    await ari.post(
        f"/channels/{channel_id}/variable", variable="TIMEOUT(absolute)", value=str(seconds)
    )


def stored_recording(name: str) -> str:
    return f"/recordings/stored/{quote(name, safe='')}"


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except (json.JSONDecodeError, AttributeError):
        return text[:200]
