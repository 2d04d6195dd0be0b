"""The working calendar and the SLA engine (rules C-1 … C-4, D-1, D-3, D-4, H-1, B-1, E-3, E-4)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hotline.config.settings import RulesSettings
from hotline.ticketing.calendar import (
    CalendarData,
    CalendarError,
    WorkingCalendar,
    library_data,
    load_override,
    parse_office_hours,
)
from hotline.ticketing.sla import SlaEngine, Stage

CST = dt.timezone(dt.timedelta(hours=8))
HOURS = parse_office_hours("08:30-12:00,13:30-17:30")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=CST)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar(library_data(), HOURS, "Asia/Shanghai")


@pytest.fixture(scope="module")
def sla(calendar: WorkingCalendar) -> SlaEngine:
    return SlaEngine(calendar, RulesSettings())


def test_a_working_day_is_seven_and_a_half_hours_of_office_time(calendar: WorkingCalendar) -> None:
    assert calendar.day_length == dt.timedelta(hours=7, minutes=30)  # rule C-2


def test_national_day_2026_and_its_make_up_saturday(calendar: WorkingCalendar) -> None:
    # rule C-2: statutory holidays are off, the declared make-up Saturday is a working day
    assert not any(calendar.is_working_day(dt.date(2026, 10, d)) for d in range(1, 8))
    assert calendar.is_working_day(dt.date(2026, 10, 8))
    assert calendar.is_working_day(dt.date(2026, 10, 10))  # Saturday, 调休
    assert not calendar.is_working_day(dt.date(2026, 10, 11))  # an ordinary Sunday
    assert calendar.is_working_day(dt.date(2026, 9, 20))  # Sunday before mid-autumn, 调休


def test_three_working_days_from_monday_ten_is_thursday_ten(calendar: WorkingCalendar) -> None:
    # rule C-3, the example in the rule book
    assert calendar.add_working_days(at("2026-11-16T10:00"), 3) == at("2026-11-19T10:00")


def test_an_event_outside_working_time_starts_at_the_next_period(calendar: WorkingCalendar) -> None:
    # rule C-3
    assert calendar.add_working_hours(at("2026-11-16T07:00"), 1) == at("2026-11-16T09:30")
    assert calendar.add_working_hours(at("2026-11-16T12:30"), 1) == at("2026-11-16T14:30")
    assert calendar.add_working_hours(at("2026-11-16T20:00"), 1) == at("2026-11-17T09:30")
    assert calendar.add_working_hours(at("2026-11-21T10:00"), 1) == at("2026-11-23T09:30")


def test_a_budget_that_ends_with_a_period_ends_on_it(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_hours(at("2026-11-16T13:30"), 4) == at("2026-11-16T17:30")
    assert calendar.add_working_hours(at("2026-11-16T08:30"), 3.5) == at("2026-11-16T12:00")


def test_instants_in_other_offsets_are_counted_in_city_time(calendar: WorkingCalendar) -> None:
    start = dt.datetime(2026, 11, 16, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    due = calendar.add_working_hours(start, 2)
    assert due == at("2026-11-16T12:00") and due.utcoffset() == dt.timedelta(hours=8)


def test_working_time_between(calendar: WorkingCalendar) -> None:
    assert calendar.working_time_between(at("2026-09-30T16:00"), at("2026-10-08T11:00")) == (
        dt.timedelta(hours=4)
    )
    assert calendar.working_time_between(at("2026-11-16T12:10"), at("2026-11-16T13:20")) == (
        dt.timedelta()
    )


@pytest.mark.parametrize(
    ("stage", "start", "due", "rule"),
    [
        (Stage.ASSIGN, "2026-09-30T16:00", "2026-10-08T09:00", "D-1"),
        (Stage.ASSIGN_MULTI, "2026-09-30T16:00", "2026-10-08T16:00", "D-1"),
        (Stage.SIGN, "2026-09-30T16:00", "2026-10-08T11:00", "D-3"),
        (Stage.RETURN, "2026-09-30T16:00", "2026-10-08T16:00", "D-4"),
        (Stage.HANDLE_CONSULTATION, "2026-09-30T16:00", "2026-10-10T16:00", "H-1"),
        (Stage.HANDLE_OTHER, "2026-09-30T16:00", "2026-10-13T16:00", "H-1"),
        (Stage.CALLBACK, "2026-09-30T16:00", "2026-10-09T16:00", "B-1"),
        (Stage.EMERGENCY_RESULT, "2026-09-30T16:00", "2026-10-08T16:00", "E-4"),
    ],
)
def test_deadlines_across_national_day_2026_and_the_make_up_saturday(
    sla: SlaEngine, stage: Stage, start: str, due: str, rule: str
) -> None:
    # rule C-2, C-3 and the stage's own rule; Oct 1-7 are off, Saturday Oct 10 is worked
    assert sla.limits[stage].rule == rule
    assert sla.due(stage, at(start)) == at(due)


def test_handling_deadline_counts_the_make_up_saturday(sla: SlaEngine) -> None:
    # rule H-1 / C-2: five full working days Oct 8, 9, 10 (the Saturday), 12, 13; without the
    # make-up Saturday they would end on Wednesday Oct 14
    assert sla.due(Stage.HANDLE_OTHER, at("2026-10-08T08:30")) == at("2026-10-13T17:30")
    assert sla.due(Stage.HANDLE_OTHER, at("2026-10-09T08:30")) == at("2026-10-14T17:30")


def test_emergency_stages_run_on_the_wall_clock(sla: SlaEngine) -> None:
    # rule C-4 with E-3 and E-4: at 23:55 on a holiday the clock still runs
    start = at("2026-10-01T23:55")
    assert sla.due(Stage.EMERGENCY_ASSIGN, start) == at("2026-10-02T00:05")
    assert sla.due(Stage.EMERGENCY_RESPONSE, start) == at("2026-10-02T00:25")


def test_rule_numbers_come_from_the_rule_table(calendar: WorkingCalendar) -> None:
    engine = SlaEngine(calendar, RulesSettings(sign_hours=2.0, handle_other_days=10.0))
    assert engine.due(Stage.SIGN, at("2026-11-16T10:00")) == at("2026-11-16T12:00")
    assert engine.due(Stage.HANDLE_OTHER, at("2026-11-16T10:00")) == at("2026-11-30T10:00")


def test_a_year_without_data_is_an_error_not_a_weekday_guess(calendar: WorkingCalendar) -> None:
    # rule C-2
    with pytest.raises(CalendarError, match="no working calendar for 2027"):
        calendar.add_working_days(at("2026-12-29T10:00"), 5)


def test_the_override_file_covers_new_years_and_city_days(tmp_path: Path) -> None:
    # rule C-2: a local override file for years the library does not cover yet
    path = tmp_path / "calendar.toml"
    path.write_text(
        '[2027]\nholidays = [2027-01-01, "2027-01-04"]\nworkdays = [2027-01-09]\n'
        "[2026]\nholidays = [2026-12-31]\n"  # a city-specific day in a covered year
    )
    cal = WorkingCalendar(library_data().merged(load_override(path)), HOURS)
    assert not cal.is_working_day(dt.date(2026, 12, 31))
    assert not cal.is_working_day(dt.date(2027, 1, 4))
    assert cal.is_working_day(dt.date(2027, 1, 9))  # a Saturday made a working day
    # Dec 30 10:00 + 15 h: 6 h on Dec 30, Dec 31 and Jan 1-4 off, 7.5 h Jan 5, 1.5 h Jan 6
    assert cal.add_working_days(at("2026-12-30T10:00"), 2) == at("2027-01-06T10:00")


@pytest.mark.parametrize(
    "text",
    [
        "[2027]\nholidays = [2026-05-01]\n",
        "[x]\n",
        "[2027]\nholidays = [1]\n",
        "[2027]\nfeasts = []\n",
        "[2027]\nholidays = [2027-01-01]\nworkdays = [2027-01-01]\n",
        "[2027\n",
    ],
)
def test_broken_override_files_are_refused_with_the_file_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(text)
    with pytest.raises(CalendarError, match=str(path)):
        load_override(path)


def test_naive_datetimes_are_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="aware"):
        calendar.add_working_hours(dt.datetime(2026, 11, 16, 10), 1)


def test_an_empty_calendar_fails_instead_of_looping() -> None:
    everything_off = CalendarData(
        holidays=frozenset(dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(730)),
        years=frozenset({2026, 2027}),
    )
    cal = WorkingCalendar(everything_off, HOURS)
    with pytest.raises(CalendarError):
        cal.add_working_hours(at("2026-01-01T10:00"), 1)
