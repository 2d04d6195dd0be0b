"""The callback campaign's policy (rules B-1, B-3): inside the calling window, before the B-1
deadline, spaced by outcome; self-evaluation when a call would not fit."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.callbacks.plan import CallWindow, Campaign, callable_now, first_call, next_call

CST = dt.timezone(dt.timedelta(hours=8))
CAMPAIGN = Campaign()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=CST)


def test_a_callback_due_at_2030_is_placed_the_next_morning_when_the_deadline_allows() -> None:
    assert first_call(CAMPAIGN, at("2026-12-03T20:30"), at("2026-12-07T20:30")) == at(
        "2026-12-04T09:00"
    )


def test_and_switches_to_self_evaluation_when_it_does_not() -> None:
    assert first_call(CAMPAIGN, at("2026-12-03T20:30"), at("2026-12-04T08:30")) is None


def test_inside_the_window_the_call_goes_at_once_and_not_in_its_last_minutes() -> None:
    assert first_call(CAMPAIGN, at("2026-12-03T15:12"), at("2026-12-05T15:00")) == at(
        "2026-12-03T15:12"
    )
    # 19:58 leaves no room for a call before 20:00: the next morning
    assert first_call(CAMPAIGN, at("2026-12-03T19:58"), at("2026-12-05T15:00")) == at(
        "2026-12-04T09:00"
    )


def test_a_busy_line_is_tried_again_sooner_than_one_that_did_not_answer() -> None:
    last, deadline = at("2026-12-03T10:00"), at("2026-12-05T10:00")
    assert next_call(CAMPAIGN, ["busy"], last, deadline) == at("2026-12-03T10:10")
    assert next_call(CAMPAIGN, ["no_answer"], last, deadline) == at("2026-12-03T11:00")
    assert next_call(CAMPAIGN, ["busy", "no_answer", "busy"], last, deadline) is None  # spent


def test_an_attempt_that_would_miss_the_deadline_is_self_evaluation_instead() -> None:
    assert (
        next_call(CAMPAIGN, ["no_answer"], at("2026-12-03T19:30"), at("2026-12-04T08:00")) is None
    )
    later = next_call(CAMPAIGN, ["no_answer"], at("2026-12-03T19:30"), at("2026-12-04T14:00"))
    assert later == at("2026-12-04T09:00")  # 20:30 is outside the window: the morning


def test_the_last_call_leaves_the_code_its_hours_before_the_deadline() -> None:
    # a call at 09:00 would leave under 4 hours for the self-evaluation code: the code now
    assert first_call(CAMPAIGN, at("2026-12-03T20:30"), at("2026-12-04T12:00")) is None
    assert first_call(CAMPAIGN, at("2026-12-03T20:30"), at("2026-12-04T13:03")) == at(
        "2026-12-04T09:00"
    )


def test_a_backlog_is_not_called_at_night_nor_close_to_its_deadline() -> None:
    deadline = at("2026-12-05T17:00")
    assert callable_now(CAMPAIGN, at("2026-12-03T10:00"), deadline)
    assert not callable_now(CAMPAIGN, at("2026-12-04T02:00"), deadline)  # due 19:50, cap full
    assert not callable_now(CAMPAIGN, at("2026-12-03T19:58"), deadline)  # no room before 20:00
    assert not callable_now(CAMPAIGN, at("2026-12-05T13:00"), deadline)  # the code's 4 hours


def test_a_city_that_does_not_call_on_sundays() -> None:
    weekdays = Campaign(window=CallWindow(days=frozenset(range(1, 7))))
    saturday_night = at("2026-12-05T21:00")
    assert first_call(weekdays, saturday_night, at("2026-12-09T09:00")) == at("2026-12-07T09:00")


@pytest.mark.parametrize(
    "bad",
    [
        lambda: CallWindow(start=dt.time(20), end=dt.time(9)),
        lambda: CallWindow(days=frozenset()),
        lambda: CallWindow(days=frozenset({0})),
        lambda: Campaign(attempts=0),
        lambda: Campaign(spacing={"busy": dt.timedelta(minutes=5)}),
    ],
)
def test_a_campaign_that_does_not_fit_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


@given(
    st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 1)),
    st.integers(min_value=0, max_value=4 * 24 * 60),
)
def test_a_call_is_never_placed_at_night_nor_after_its_deadline(ready: dt.datetime, minutes: int):
    start = ready.replace(tzinfo=CST)
    deadline = start + dt.timedelta(minutes=minutes)
    placed = first_call(CAMPAIGN, start, deadline)
    if placed is None:
        return
    local = placed.astimezone(CST)
    assert dt.time(9) <= local.time() and (local + CAMPAIGN.call_time).time() <= dt.time(20)
    assert start <= placed
    assert placed + CAMPAIGN.call_time <= deadline - CAMPAIGN.evaluation_time  # the code's time
