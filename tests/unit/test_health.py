"""The watch on the dependencies: down and back, resets, and the catch-up that follows."""

from __future__ import annotations

import asyncio
import datetime as dt

from hotline.clock import FixedClock
from hotline.errors import NotMigrated
from hotline.health import Dependencies

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


class Switch:
    def __init__(self) -> None:
        self.up, self.reset, self.hang = True, False, False

    async def probe(self) -> bool:
        if self.hang:
            await asyncio.sleep(3600)
        if not self.up:
            raise ConnectionRefusedError("[Errno 111] Connect call failed ('10.0.0.7', 5432)")
        reset, self.reset = self.reset, False
        return reset


async def test_a_dependency_goes_down_and_its_return_runs_the_catch_up() -> None:
    clock, db = FixedClock(T0), Switch()
    health = Dependencies(clock, timeout=0.05)
    health.add("database", db.probe)
    caught_up: list[str] = []

    async def flush() -> None:
        caught_up.append("flush")

    health.when_up("database", flush)
    await health.probe_all()
    assert health.ready() and caught_up == []  # up from the start: nothing to catch up
    db.up = False
    await health.probe_all()
    clock.advance(dt.timedelta(seconds=7))
    assert health.down("database") and not health.ready()
    # the class of the error only: /readyz is public, the text names a host
    assert health.status() == {
        "database": {"ok": False, "error": "ConnectionRefusedError", "down_for": 7.0}
    }
    db.up = True
    await health.probe_all()
    await health.background.drain()
    assert caught_up == ["flush"] and health.status() == {"database": {"ok": True}}


async def test_a_probe_that_hangs_is_down_within_its_bound() -> None:
    db = Switch()
    db.hang = True
    health = Dependencies(FixedClock(T0), timeout=0.05)
    health.add("database", db.probe)
    await asyncio.wait_for(health.probe_all(), 1)
    assert health.down("database")
    assert health.status()["database"]["error"] == "TimeoutError"


async def test_a_reset_found_while_up_runs_the_catch_up_too() -> None:
    redis = Switch()
    health = Dependencies(FixedClock(T0), timeout=0.05)
    health.add("redis", redis.probe)
    restored: list[int] = []

    async def restore() -> None:
        restored.append(1)

    health.when_up("redis", restore)
    await health.probe_all()
    redis.reset = True  # restarted empty between two probes
    await health.probe_all()
    await health.background.drain()
    assert restored == [1] and health.ready()


async def test_not_probed_yet_is_not_ready_and_not_down() -> None:
    health = Dependencies(FixedClock(T0))
    health.add("ari", Switch().probe)
    assert not health.ready() and not health.down("ari")
    assert health.status() == {"ari": {"ok": False, "error": "not probed yet"}}


async def test_a_database_behind_the_migrations_is_down_as_not_migrated() -> None:
    async def probe() -> None:
        raise NotMigrated("database is at revision 0004, the code needs 0005")

    health = Dependencies(FixedClock(T0))
    health.add("database", probe)
    await health.probe_all()
    assert health.status()["database"]["error"] == "not migrated"


async def test_a_probe_whose_cancellation_hangs_too_is_down_at_its_bound() -> None:
    # asyncpg cancelling a query on a frozen server waits on that server
    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(2)  # the driver's cleanup
            raise

    health = Dependencies(FixedClock(T0), timeout=0.05)
    health.add("database", stubborn)
    started = asyncio.get_running_loop().time()
    await health.probe_all()
    await health.probe_all()  # the first still hangs: no second connection attempt
    assert asyncio.get_running_loop().time() - started < 1
    assert health.down("database") and health.went_down("database").is_set()
    await health.close()
