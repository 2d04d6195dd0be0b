"""A fake Asterisk behind the ARI port, for unit tests of call control without a switch.

It records every request (method, path, query parameters, JSON body), answers from what a test
put in — channels, stored recordings, replies for a path, paths that answer 404 — and delivers
events a test injects over an events stream that a test can also cut (the WebSocket dropping).
The real Asterisk is in the lab (the e2e tests); this one is only as faithful as the tests that
use it need, and says so where it guesses: a GET of anything it was not told about answers an
empty object, a POST or DELETE nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hotline.agi.ari import AriVerbs
from hotline.errors import AriError

_CUT = object()  # in the events queue: the socket drops here


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    params: dict[str, Any]
    body: dict[str, Any] | None = None


@dataclass
class InTurn:
    """Replies for a path one request at a time (then the path answers as usual)."""

    replies: list[Any]


@dataclass
class FakeAsterisk(AriVerbs):
    password: str = "fake-ari-password"
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> channel JSON
    stored: dict[str, bytes] = field(default_factory=dict)  # stored recordings: name -> WAV
    replies: dict[tuple[str, str], Any] = field(default_factory=dict)  # (method, path) -> reply
    missing: set[str] = field(default_factory=set)  # paths that answer 404
    requests: list[Request] = field(default_factory=list)
    opened: int = 0  # how many times an events stream was opened
    _events: asyncio.Queue[object] = field(default_factory=asyncio.Queue)

    # -- what a test sees ------------------------------------------------------------------
    @property
    def calls(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The requests as (method, path, query parameters)."""
        return [(r.method, r.path, r.params) for r in self.requests]

    def inject(self, event: Mapping[str, Any]) -> None:
        """An event for the application, as Asterisk would send it."""
        self._events.put_nowait(dict(event))

    def cut(self) -> None:
        """The events socket drops (after the events injected before)."""
        self._events.put_nowait(_CUT)

    # -- the port --------------------------------------------------------------------------
    async def request(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None, **params: Any
    ) -> Any:
        self.requests.append(Request(method, path, dict(params), dict(body) if body else None))
        await asyncio.sleep(0)  # a real request yields to the loop
        if path in self.missing:
            raise AriError(404, f"{path} not found")
        if (method, path) in self.replies:
            reply = self.replies[method, path]
            if isinstance(reply, InTurn):  # one reply per request, then the resource's own
                turn = reply
                reply = turn.replies.pop(0)
                if not turn.replies:
                    del self.replies[method, path]
            if isinstance(reply, AriError):
                raise reply
            return reply
        return self._resource(method, path)

    def _resource(self, method: str, path: str) -> Any:
        parts = path.strip("/").split("/")
        if parts[:2] == ["recordings", "stored"]:
            return self._recording(method, parts[2:])
        if parts == ["channels"] and method == "GET":
            return list(self.channels.values())
        if parts[0] == "channels" and len(parts) == 2 and method == "GET":
            if parts[1] not in self.channels:
                raise AriError(404, "Channel not found")
            return self.channels[parts[1]]
        return {} if method == "GET" else None

    def _recording(self, method: str, rest: list[str]) -> Any:
        if not rest:
            return [{"name": n, "format": "wav"} for n in self.stored] if method == "GET" else None
        name = rest[0]
        if name not in self.stored:
            raise AriError(404, "Recording not found")
        if method == "DELETE":
            del self.stored[name]
            return None
        return {"name": name, "format": "wav"}

    async def download(self, path: str) -> bytes:
        self.requests.append(Request("GET", path, {}))
        parts = path.strip("/").split("/")
        is_file = parts[:2] == ["recordings", "stored"] and len(parts) == 4 and parts[3] == "file"
        if is_file and parts[2] in self.stored:
            return self.stored[parts[2]]
        raise AriError(404, f"{path} not found")

    async def events(
        self, app: str, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        self.opened += 1
        if on_open is not None:
            on_open()
        while True:
            event = await self._events.get()
            if event is _CUT:
                return
            assert isinstance(event, dict)
            yield event
