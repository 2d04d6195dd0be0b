"""The official working calendar and working-time arithmetic (rules C-1 … C-4).

A day is a working day when it is a declared make-up working day (调休), or a weekday that is
not a statutory holiday. The dates come from the ``chinesecalendar`` library plus a local
override file for the years the library does not cover yet and for city-specific days. A date
in a year that neither covers is a :class:`CalendarError` — never a silent weekday guess.

Arithmetic (rule C-3): a deadline of N working hours or days counts only office hours on working
days, from the event; an event outside working time starts the clock at the next working
period; N working days = N × the length of one working day in working time, so Monday 10:00 + 3
working days = Thursday 10:00 in a normal week. A deadline that uses up its budget exactly at
the end of a period falls on that end (17:30), not on the next morning.
"""

from __future__ import annotations

import datetime as dt
import tomllib
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hotline.errors import CalendarError

MAX_SPAN_DAYS = 400  # no deadline reaches further; protects against an empty calendar


def parse_office_hours(text: str) -> tuple[tuple[dt.time, dt.time], ...]:
    """``"08:30-12:00,13:30-17:30"`` -> ((08:30, 12:00), (13:30, 17:30))."""
    periods = []
    for part in text.split(","):
        start, end = part.split("-")
        periods.append((dt.time.fromisoformat(start), dt.time.fromisoformat(end)))
    return tuple(periods)


@dataclass(frozen=True, slots=True)
class CalendarData:
    """Which dates are holidays or make-up working days, for which years."""

    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()  # make-up working days (weekend days)
    years: frozenset[int] = frozenset()
    sources: tuple[str, ...] = field(default=())

    def merged(self, other: CalendarData) -> CalendarData:
        """``other`` wins on the dates it names."""
        return CalendarData(
            holidays=(self.holidays - other.workdays) | other.holidays,
            workdays=(self.workdays - other.holidays) | other.workdays,
            years=self.years | other.years,
            sources=self.sources + other.sources,
        )


def library_data() -> CalendarData:
    """Holidays and make-up days from the ``chinesecalendar`` package."""
    import chinese_calendar

    holidays = frozenset(chinese_calendar.holidays)
    workdays = frozenset(chinese_calendar.workdays)
    years = frozenset(d.year for d in holidays | workdays)
    return CalendarData(holidays, workdays, years, (f"chinesecalendar {years and max(years)}",))


def load_override(path: Path) -> CalendarData:
    """An override file: one table per year with ``holidays`` and ``workdays`` date lists.

    ```toml
    [2027]
    holidays = [2027-01-01, 2027-02-05]   # TOML dates or "YYYY-MM-DD" strings
    workdays = [2027-02-14]               # make-up working days (调休)
    ```
    A year table, even an empty one, declares that year covered.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CalendarError(f"calendar file {path}: {exc}") from None
    holidays: set[dt.date] = set()
    workdays: set[dt.date] = set()
    years: set[int] = set()
    for year_text, table in data.items():
        if not (year_text.isdigit() and isinstance(table, dict)):
            raise CalendarError(f"calendar file {path}: [{year_text}] is not a [YYYY] table")
        year = int(year_text)
        years.add(year)
        for key, target in (("holidays", holidays), ("workdays", workdays)):
            for value in table.get(key, []):
                day = _as_date(value, path, year_text)
                if day.year != year:
                    raise CalendarError(f"calendar file {path}: {day} listed under [{year}]")
                target.add(day)
        unknown = set(table) - {"holidays", "workdays"}
        if unknown:
            raise CalendarError(f"calendar file {path}: unknown keys {sorted(unknown)}")
    both = holidays & workdays
    if both:
        raise CalendarError(f"calendar file {path}: both holiday and workday: {sorted(both)}")
    return CalendarData(frozenset(holidays), frozenset(workdays), frozenset(years), (str(path),))


def _as_date(value: object, path: Path, year: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise CalendarError(f"calendar file {path}: [{year}] has {value!r}, not a date")


class WorkingCalendar:
    """Working days and office hours of one city, with working-time arithmetic."""

    def __init__(
        self,
        data: CalendarData,
        office_hours: Iterable[tuple[dt.time, dt.time]],
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.data = data
        self.periods = tuple(office_hours)
        if not self.periods or any(a >= b for a, b in self.periods):
            raise CalendarError(f"office hours must be ascending periods: {self.periods}")
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.day_length = sum(
            (_span(a, b) for a, b in self.periods), dt.timedelta()
        )  # one working day in working time

    @classmethod
    def from_settings(
        cls,
        timezone: str,
        office_hours: str,
        calendar_file: str = "",
        base: Callable[[], CalendarData] = library_data,
    ) -> WorkingCalendar:
        data = base()
        if calendar_file:
            data = data.merged(load_override(Path(calendar_file)))
        return cls(data, parse_office_hours(office_hours), timezone)

    # -- days ---------------------------------------------------------------------------------
    def is_working_day(self, day: dt.date) -> bool:
        if day.year not in self.data.years:
            covered = (
                f"{min(self.data.years)}–{max(self.data.years)}" if self.data.years else "none"
            )
            raise CalendarError(
                f"no working calendar for {day.year} (covered: {covered}); add a [{day.year}] "
                "table of holidays and make-up working days to the calendar file "
                "(city.calendar_file / HOTLINE_CITY_CALENDAR_FILE)"
            )
        if day in self.data.workdays:
            return True
        if day in self.data.holidays:
            return False
        return day.weekday() < 5

    def periods_from(self, start: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Working periods (local, aware) from ``start`` on, the first one clipped to it."""
        local = start.astimezone(self.tz)
        day = local.date()
        for _ in range(MAX_SPAN_DAYS):
            if self.is_working_day(day):
                for a, b in self.periods:
                    begin = dt.datetime.combine(day, a, self.tz)
                    end = dt.datetime.combine(day, b, self.tz)
                    if end > local:
                        yield max(begin, local), end
            day += dt.timedelta(days=1)
        raise CalendarError(f"no working time within {MAX_SPAN_DAYS} days of {start}")

    # -- arithmetic ---------------------------------------------------------------------------
    def add_working_time(self, start: dt.datetime, budget: dt.timedelta) -> dt.datetime:
        """The instant ``budget`` of working time after ``start`` is used up (rule C-3)."""
        if start.tzinfo is None:
            raise ValueError("working-time arithmetic needs an aware datetime")
        if budget < dt.timedelta():
            raise ValueError("a negative working time")
        remaining = budget
        for begin, end in self.periods_from(start):
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin
        raise AssertionError("unreachable: periods_from raises first")  # pragma: no cover

    def add_working_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        return self.add_working_time(start, dt.timedelta(hours=hours))

    def add_working_days(self, start: dt.datetime, days: float) -> dt.datetime:
        return self.add_working_time(start, self.day_length * days)

    def periods_before(self, end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Working periods (local, aware) before ``end``, latest first, the first clipped."""
        local = end.astimezone(self.tz)
        day = local.date()
        for _ in range(MAX_SPAN_DAYS):
            if self.is_working_day(day):
                for a, b in reversed(self.periods):
                    begin = dt.datetime.combine(day, a, self.tz)
                    stop = dt.datetime.combine(day, b, self.tz)
                    if begin < local:
                        yield begin, min(stop, local)
            day -= dt.timedelta(days=1)
        raise CalendarError(f"no working time within {MAX_SPAN_DAYS} days before {end}")

    def subtract_working_time(self, end: dt.datetime, budget: dt.timedelta) -> dt.datetime:
        """The latest instant from which ``budget`` of working time runs out at ``end``: a
        reminder 1 working hour before a deadline at Monday 09:00 falls on Friday 17:00. A
        budget that uses up a period exactly falls on the period's start (13:30, not 12:00)."""
        if end.tzinfo is None:
            raise ValueError("working-time arithmetic needs an aware datetime")
        if budget < dt.timedelta():
            raise ValueError("a negative working time")
        remaining = budget
        for begin, stop in self.periods_before(end):
            if remaining <= stop - begin:
                return stop - remaining
            remaining -= stop - begin
        raise AssertionError("unreachable: periods_before raises first")  # pragma: no cover

    def working_time_between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time from ``start`` to ``end`` (zero when ``end`` is not after ``start``)."""
        total = dt.timedelta()
        if end <= start:
            return total
        for begin, stop in self.periods_from(start):
            if begin >= end:
                break
            total += min(stop, end) - begin
        return total


def _span(a: dt.time, b: dt.time) -> dt.timedelta:
    day = dt.date(2000, 1, 1)
    return dt.datetime.combine(day, b) - dt.datetime.combine(day, a)
