"""A small AMI (Asterisk Manager Interface) listener: log in, collect events.

The lab uses it to observe what Asterisk did with a call (``UserEvent`` lines from the
dialplan, ``Newexten``, ``Hangup``); it is not a general AMI client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

Message = dict[str, str]


class AMIError(Exception):
    pass


def parse_block(block: str) -> Message:
    msg: Message = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            msg.setdefault(key.strip(), value.strip())
    return msg


class AMIListener:
    def __init__(self, host: str, port: int, user: str, secret: str, events: str = "on") -> None:
        """``events``: ``on`` for every class, or a list of classes (``user``: UserEvent only)."""
        self.host, self.port, self.user, self.secret = host, port, user, secret
        self.event_mask = events
        self.events: list[Message] = []
        self._changed = asyncio.Condition()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AMIListener:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        banner = await asyncio.wait_for(self._reader.readline(), 5)
        if not banner.startswith(b"Asterisk Call Manager"):
            raise AMIError(f"not an AMI banner: {banner[:60]!r}")
        self._writer.write(
            f"Action: Login\r\nUsername: {self.user}\r\nSecret: {self.secret}\r\n"
            f"Events: {self.event_mask}\r\n\r\n".encode()
        )
        reply = parse_block(await self._read_block())
        if reply.get("Response") != "Success":
            raise AMIError(f"AMI login refused: {reply.get('Message', reply)}")
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task
        if self._writer:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    async def _read_block(self) -> str:
        assert self._reader is not None
        data = await self._reader.readuntil(b"\r\n\r\n")
        return data.decode("utf-8", errors="replace")

    async def _pump(self) -> None:
        while True:
            msg = parse_block(await self._read_block())
            if "Event" in msg:
                async with self._changed:
                    self.events.append(msg)
                    self._changed.notify_all()

    async def wait_for(self, match: Callable[[Message], bool], timeout: float) -> Message:
        """The first event (already seen or still to come) for which ``match`` is true."""

        def found() -> Message | None:
            return next((e for e in self.events if match(e)), None)

        async def wait() -> Message:
            async with self._changed:
                await self._changed.wait_for(lambda: found() is not None)
            result = found()
            assert result is not None
            return result

        return await asyncio.wait_for(wait(), timeout)
