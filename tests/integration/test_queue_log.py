"""The queue log on both databases: batches written off the call path, a repeated batch a
no-op, records kept while the database is away, and app_queue's queue_log lines."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import FixedClock
from hotline.queue.acd import QueueEvent
from hotline.queue.log import QueueLog, queue_log_line, read

T0 = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)


async def test_records_go_in_once_and_read_back_as_app_queue_lines(engine: AsyncEngine) -> None:
    qlog = QueueLog(engine, FixedClock(T0), "n1")
    qlog.add([QueueEvent(0.0, "c9", "NONE", "ENTERQUEUE", ("", "139****5678"))])
    qlog.add([QueueEvent(1.0, "c9", "a1", "CONNECT", ("1", "offer-c9-1", "1"))])
    batch = list(qlog.pending)
    assert await qlog.flush() == 2
    assert not qlog.pending
    qlog.pending.extend(batch)  # a batch whose commit answer was lost goes again: a no-op
    await qlog.flush()
    rows = await read(engine, call_id="c9")
    assert [r.event for r in rows] == ["ENTERQUEUE", "CONNECT"]
    assert [queue_log_line(r) for r in rows] == [
        f"{int(T0.timestamp())}|c9|hotline|NONE|ENTERQUEUE||139****5678",
        f"{int(T0.timestamp())}|c9|hotline|a1|CONNECT|1|offer-c9-1|1",
    ]


async def test_while_the_database_is_away_records_wait_and_go_in_when_it_is_back(
    engine: AsyncEngine,
) -> None:
    qlog = QueueLog(engine, FixedClock(T0), "n1")
    qlog.add([QueueEvent(0.0, NONE_CALL, "a1", "PAUSE", ("lunch",))])
    real, qlog.engine = qlog.engine, _Broken()  # type: ignore[assignment]
    with pytest.raises(OSError):
        await qlog.flush()
    assert len(qlog.pending) == 1  # kept
    qlog.engine = real
    assert await qlog.flush() == 1
    (row,) = await read(engine)
    assert (row.agent, row.event, row.data) == ("a1", "PAUSE", ("lunch",))


def test_beyond_its_limit_the_oldest_records_are_dropped_and_counted() -> None:
    qlog = QueueLog(None, FixedClock(T0), "n1", limit=2)
    qlog.add([QueueEvent(0.0, f"c{i}", "NONE", "ENTERQUEUE", ()) for i in range(5)])
    assert [r.call_id for r in qlog.pending] == ["c3", "c4"] and qlog.dropped == 3


NONE_CALL = "NONE"


class _Broken:
    def begin(self) -> object:
        raise OSError("connection refused")
