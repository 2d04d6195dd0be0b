"""Background work of one owner, and retries with back-off: one helper each, on the clock.

:class:`Background` holds the tasks an object starts (a journal row written after the call, a
recording fetched, a registration retried): ``submit`` starts one and keeps it until it ends;
an exception ends that task only and is logged with what it was doing; ``drain`` waits for all
(also those submitted meanwhile), ``close`` gives them a grace period and then cancels and
awaits the rest — nothing is left pending when the owner goes (after aiohttp's cleanup_ctx).

:func:`retry` runs an operation until it succeeds or its delays are spent, sleeping on the
injected clock between attempts, and raises the last error: the one retry loop of the code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from hotline.clock import Clock, SystemClock

log = logging.getLogger(__name__)

T = TypeVar("T")


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


async def retry(
    operation: Callable[[], Awaitable[T]],
    delays: Sequence[float],
    *,
    what: str,
    clock: Clock | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    detail: bool = False,
) -> T:
    """``operation()``, and again after each of ``delays`` while it raises ``retry_on``; the
    last error is raised once the delays are spent. Each failed attempt is logged with the
    error's class — and its text only with ``detail`` (a database error's text may quote what
    it was given; an ARI error's does not)."""
    clock = clock or SystemClock()
    for attempt, delay in enumerate([*delays, None], start=1):
        try:
            return await operation()
        except retry_on as exc:
            if delay is None:
                raise
            reason = f"{type(exc).__name__}: {exc}" if detail else type(exc).__name__
            log.warning(
                "%s: attempt %d/%d failed (%s); again in %.1f s",
                what,
                attempt,
                len(delays) + 1,
                reason,
                delay,
            )
            await clock.sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises
