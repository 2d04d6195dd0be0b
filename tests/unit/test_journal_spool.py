"""Journal rows survive a database outage and a killed backend: the local spool."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from hotline.ivr.inbound import JournalWriter
from hotline.ivr.journal import CallRecord, MemoryCallJournal

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


class Away(MemoryCallJournal):
    def __init__(self) -> None:
        super().__init__()
        self.away = True

    async def record(self, call: CallRecord) -> None:
        if self.away:
            raise ConnectionRefusedError("database down")
        await super().record(call)


def call(n: int) -> CallRecord:
    return CallRecord(f"1796157005.{n}", "ivr", "13912340249", "PJSIP/c", T0, steps=["answer"])


async def test_rows_written_while_the_database_is_away_are_flushed_once_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Away()
    writer = JournalWriter(journal, tmp_path)
    for n in range(3):
        c = call(n)
        writer.begin(c)
        c.outcome, c.ended_at = "routed", T0
        writer.submit(c)
    await writer.drain()
    assert journal.calls == [] and writer.pending() == 3
    with pytest.raises(ConnectionRefusedError):
        await writer.flush()  # still away: nothing lost
    journal.away = False
    assert await writer.flush() == 3
    assert sorted(c.call_id for c in journal.calls) == [f"1796157005.{n}" for n in range(3)]
    assert writer.pending() == 0 and await writer.flush() == 0
    assert "13912340249" not in caplog.text


async def test_a_call_up_when_the_process_was_killed_is_stored_as_interrupted(
    tmp_path: Path,
) -> None:
    killed = JournalWriter(MemoryCallJournal(), tmp_path)
    c = call(7)
    killed.begin(c)
    c.step("welcome")
    c.step("menu:7")  # ... and then kill -9: no end, no database write
    c2 = call(8)
    killed.begin(c2)
    journal = MemoryCallJournal()
    restarted = JournalWriter(journal, tmp_path)
    assert await restarted.flush() == 0  # its process still holds them
    killed.close()  # what the kernel does for a killed process: its lock is gone
    assert await restarted.flush() == 2
    assert [p.name for p in tmp_path.iterdir()] == [restarted.spool.name]  # type: ignore[union-attr]
    assert {(r.call_id, r.outcome, ">".join(r.steps)) for r in journal.calls} == {
        ("1796157005.7", "interrupted", "answer>welcome>menu:7"),  # as far as it got
        ("1796157005.8", "interrupted", "answer"),
    }


async def test_a_call_still_up_in_this_process_is_not_flushed(tmp_path: Path) -> None:
    journal = MemoryCallJournal()
    writer = JournalWriter(journal, tmp_path)
    writer.begin(call(1))
    assert await writer.flush() == 0 and writer.pending() == 1


async def test_the_spool_holds_callers_in_clear_so_only_the_owner_reads_it(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "journal"
    writer = JournalWriter(Away(), spool)
    writer.begin(call(1))
    (path,) = spool.glob("*/*.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(spool).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


async def test_an_unreadable_spool_file_is_moved_aside_not_retried_forever(
    tmp_path: Path,
) -> None:
    dead = JournalWriter(MemoryCallJournal(), tmp_path)
    assert dead.spool is not None
    (dead.spool / "broken.json").write_text("{not json")
    dead.close()
    journal = MemoryCallJournal()
    writer = JournalWriter(journal, tmp_path)
    assert await writer.flush() == 0
    assert (dead.spool / "broken.bad").exists() and writer.pending() == 0


async def test_two_processes_sharing_a_spool_never_take_each_other_s_live_calls(
    tmp_path: Path,
) -> None:
    journal = MemoryCallJournal()
    a, b = JournalWriter(journal, tmp_path), JournalWriter(journal, tmp_path)
    a.begin(call(1))
    b.begin(call(2))
    assert await a.flush() == 0 and await b.flush() == 0
    assert journal.calls == [] and a.pending() == 2
