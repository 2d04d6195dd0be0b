"""Today's figures for the supervisor, from queue log rows: answered, abandoned, in time."""

from __future__ import annotations

import datetime as dt

from hotline.queue.log import SERVICE_LEVEL_SECONDS, LogRow, figures

AT = dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC)


def row(event: str, *data: str) -> LogRow:
    return LogRow("k", AT, "c", "hotline", "a", event, data)


def test_answered_in_time_over_answered_and_abandoned() -> None:
    rows = [
        row("ENTERQUEUE", "", "139****0001"),
        row("CONNECT", "3", "offer-c-1", "0"),
        row("CONNECT", str(SERVICE_LEVEL_SECONDS), "offer-c-2", "1"),  # on the line: in time
        row("CONNECT", str(SERVICE_LEVEL_SECONDS + 1), "offer-c-3", "1"),
        row("ABANDON", "1", "1", "20"),
        row("RINGNOANSWER", "4000"),
    ]
    got = figures(rows)
    assert (got.answered, got.abandoned, got.within) == (3, 1, 2)
    assert got.service_level == 0.5
    assert figures([]).service_level is None  # no call yet: no level, not 0 % nor 100 %
