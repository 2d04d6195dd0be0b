"""Background work of one owner, and the back-off between retries.

:class:`Background` holds the tasks an object starts (a journal row written after the call, a
recording fetched, a registration retried): ``submit`` starts one and keeps it until it ends;
an exception ends that task only and is logged with what it was doing; ``drain`` waits for all
(also those submitted meanwhile), ``close`` gives them a grace period and then cancels and
awaits the rest — nothing is left pending when the owner goes (after aiohttp's cleanup_ctx).

:func:`backoff` gives the waits between attempts. Work that must be retried until it holds is a
durable job (:mod:`hotline.jobs`), retried at these waits on the injected clock and surviving a
restart — there is no retry loop in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0

    def __len__(self) -> int:
        return len(self._tasks)

    def submit(self, work: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work, name=f"{self.owner}: {what}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures += 1
            log.error("%s failed", task.get_name(), exc_info=exc)

    async def drain(self) -> None:
        """Wait until every task has ended, those started while waiting included."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 0.0) -> None:
        """Let the tasks run for up to ``grace`` seconds, then cancel the rest and await them."""
        if self._tasks and grace > 0:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def backoff(first: float, attempts: int, factor: float = 2.0, top: float = 60.0) -> list[float]:
    """``attempts`` waits growing by ``factor`` from ``first``, none over ``top``."""
    return [min(first * factor**n, top) for n in range(attempts)]
