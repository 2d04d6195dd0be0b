"""The utility duty directory (rule H-6): who answers a water, power or gas emergency, now.

Each utility names the linked unit that handles it (an id of the units table), the categories
of request it takes (water main burst, power cut, gas smell, …) and an ordered list of duty
numbers — a PJSIP endpoint (``PJSIP/utility-water``) or a number on a trunk
(``PJSIP/95566@trunk``) — each with the hours it covers (``08:30-17:30``; ``17:30-08:30``
runs over midnight; empty or ``00:00-24:00``: always). :meth:`Directory.numbers_at` gives the
numbers to ring for a utility at an instant, in order: the three-way call tries them one after
the other. Pure: the file is read and checked here, nothing rings here.

The file (``utility.directory_file``; empty: the lab's, ``hotline/config/utilities.toml``)::

    [water]
    unit = "water"
    name = "市水务集团"
    categories = ["water_main_burst", "no_water", "water_leak"]
    [[water.duty]]
    number = "PJSIP/utility-water"
    hours = "00:00-24:00"
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
import zoneinfo
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

UTILITIES = ("water", "power", "gas")  # rule H-6
NUMBER = re.compile(r"PJSIP/[A-Za-z0-9_.+-]{1,64}(@[A-Za-z0-9_.-]{1,64})?")
CATEGORY = re.compile(r"[a-z0-9_]{1,64}")
HOURS = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)")
ALWAYS = ((dt.time(0, 0), None),)  # None: the end of the day


class DirectoryError(ValueError):
    """The directory file does not fit; names the key (exit 2 at start-up)."""

    def __init__(self, where: str, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"utility directory {where}: {key}: {problem}")


@dataclass(frozen=True, slots=True)
class DutyNumber:
    number: str
    hours: tuple[tuple[dt.time, dt.time | None], ...]  # periods of local time it covers
    text: str  # the hours as written

    def covers(self, local: dt.time) -> bool:
        for start, end in self.hours:
            if end is None:  # to midnight
                if local >= start:
                    return True
            elif start < end:
                if start <= local < end:
                    return True
            elif local >= start or local < end:  # over midnight
                return True
        return False


@dataclass(frozen=True, slots=True)
class Utility:
    utility: str  # water | power | gas
    unit: str  # the linked unit that handles it
    name: str
    categories: tuple[str, ...]
    duty: tuple[DutyNumber, ...]


@dataclass(frozen=True, slots=True)
class Directory:
    utilities: dict[str, Utility]
    timezone: str = "Asia/Shanghai"

    def numbers_at(self, utility: str, at: dt.datetime) -> list[DutyNumber]:
        """The duty numbers that cover ``at`` (city time), in the directory's order."""
        found = self.utilities.get(utility)
        if found is None:
            return []
        local = at.astimezone(zoneinfo.ZoneInfo(self.timezone)).time()
        return [d for d in found.duty if d.covers(local)]

    def for_category(self, category: str) -> Utility | None:
        return next((u for u in self.utilities.values() if category in u.categories), None)


def _hours(text: str, where: str, key: str) -> tuple[tuple[dt.time, dt.time | None], ...]:
    text = text.strip()
    if not text or text == "00:00-24:00":
        return ALWAYS
    periods: list[tuple[dt.time, dt.time | None]] = []
    for part in text.split(","):
        part = part.strip()
        if not HOURS.fullmatch(part):
            raise DirectoryError(where, key, f"{part!r} is not HH:MM-HH:MM")
        start, end = part.split("-")
        if start == end:
            raise DirectoryError(where, key, f"{part!r} covers nothing")
        periods.append(
            (dt.time.fromisoformat(start), None if end == "24:00" else dt.time.fromisoformat(end))
        )
    return tuple(periods)


def parse(data: dict[str, Any], where: str, timezone: str = "Asia/Shanghai") -> Directory:
    utilities: dict[str, Utility] = {}
    for name, table in data.items():
        if name not in UTILITIES:
            raise DirectoryError(where, name, f"is not one of {', '.join(UTILITIES)}")
        if not isinstance(table, dict):
            raise DirectoryError(where, name, "is not a table")
        utilities[name] = _utility(name, table, where)
    return Directory(utilities, timezone)


def _utility(name: str, table: dict[str, Any], where: str) -> Utility:
    unknown = set(table) - {"unit", "name", "categories", "duty"}
    if unknown:
        raise DirectoryError(where, f"{name}.{sorted(unknown)[0]}", "is not a known key")
    unit, title = table.get("unit"), table.get("name", "")
    if not isinstance(unit, str) or not unit.strip():
        raise DirectoryError(where, f"{name}.unit", "names the linked unit (its id)")
    if not isinstance(title, str):
        raise DirectoryError(where, f"{name}.name", "is a string")
    categories = table.get("categories", [])
    if not isinstance(categories, list) or not all(
        isinstance(c, str) and CATEGORY.fullmatch(c) for c in categories
    ):
        raise DirectoryError(where, f"{name}.categories", "is a list of a-z, 0-9, _ names")
    rows = table.get("duty", [])
    if not isinstance(rows, list) or not rows:
        raise DirectoryError(where, f"{name}.duty", "lists one [[…duty]] number at least")
    duty = tuple(_duty(f"{name}.duty[{n}]", row, where) for n, row in enumerate(rows, start=1))
    return Utility(name, unit, title, tuple(categories), duty)


def _duty(key: str, row: Any, where: str) -> DutyNumber:
    if not isinstance(row, dict) or set(row) - {"number", "hours"}:
        raise DirectoryError(where, key, "has number and hours only")
    number, hours = row.get("number"), row.get("hours", "")
    if not isinstance(number, str) or not NUMBER.fullmatch(number):
        raise DirectoryError(where, f"{key}.number", "is PJSIP/endpoint or PJSIP/n@trunk")
    if not isinstance(hours, str):
        raise DirectoryError(where, f"{key}.hours", "is a string of HH:MM-HH:MM")
    return DutyNumber(number, _hours(hours, where, f"{key}.hours"), hours)


def load(path: str | Path | None, timezone: str = "Asia/Shanghai") -> Directory:
    """The directory file, or the lab's when ``path`` is empty."""
    if path:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DirectoryError(where, "file", exc.strerror or str(exc)) from None
    else:
        where = "hotline/config/utilities.toml"
        text = resources.files("hotline.config").joinpath("utilities.toml").read_text("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(where, "file", f"not TOML ({exc})") from None
    return parse(data, where, timezone)
