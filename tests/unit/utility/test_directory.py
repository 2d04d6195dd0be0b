"""The utility duty directory (rule H-6): who is rung for a water, power or gas emergency, in
which order, at which hour; a file that does not fit names its key."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from hotline.lab.render import utility_endpoints, utility_port
from hotline.utility.directory import DirectoryError, load, parse

CST = dt.timezone(dt.timedelta(hours=8))

CITY = tomllib.loads(
    """
[water]
unit = "water"
name = "市水务集团"
categories = ["water_main_burst", "no_water"]
[[water.duty]]
number = "PJSIP/water-day"
hours = "08:30-17:30"
[[water.duty]]
number = "PJSIP/water-night"
hours = "17:30-08:30"
[[water.duty]]
number = "PJSIP/96116@trunk"
"""
)


def at(hhmm: str) -> dt.datetime:
    h, m = hhmm.split(":")
    return dt.datetime(2026, 12, 3, int(h), int(m), tzinfo=CST)


@pytest.mark.parametrize(
    ("when", "numbers"),
    [
        ("09:00", ["PJSIP/water-day", "PJSIP/96116@trunk"]),
        ("17:29", ["PJSIP/water-day", "PJSIP/96116@trunk"]),
        ("17:30", ["PJSIP/water-night", "PJSIP/96116@trunk"]),  # the night line from 17:30
        ("03:00", ["PJSIP/water-night", "PJSIP/96116@trunk"]),  # over midnight
        ("08:30", ["PJSIP/water-day", "PJSIP/96116@trunk"]),
    ],
)
def test_the_numbers_on_duty_in_order_by_the_hour(when: str, numbers: list[str]) -> None:
    directory = parse(CITY, "test")
    assert [d.number for d in directory.numbers_at("water", at(when))] == numbers


def test_a_utility_not_in_the_directory_has_no_numbers_and_categories_find_their_unit() -> None:
    directory = parse(CITY, "test")
    assert directory.numbers_at("gas", at("09:00")) == []
    found = directory.for_category("no_water")
    assert found is not None and found.unit == "water"
    assert directory.for_category("gas_smell") is None


def test_the_labs_directory_names_the_labs_endpoints() -> None:
    lab = load("")
    rendered = utility_endpoints(5060)
    for utility in ("water", "power", "gas"):
        numbers = [d.number for d in lab.numbers_at(utility, at("03:00"))]
        assert numbers == [f"PJSIP/utility-{utility}", f"PJSIP/utility-{utility}-2"]
        for n in numbers:
            endpoint = n.removeprefix("PJSIP/")
            assert f"[{endpoint}](lab-endpoint)" in rendered
            assert f"127.0.0.1:{utility_port(5060, endpoint)}\n" in rendered
    ports = {
        utility_port(5060, f"utility-{u}{s}") for u in ("water", "power", "gas") for s in ("", "-2")
    }
    assert ports == set(range(5071, 5077))  # clear of the citizen (+1) and operator (+10)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[sewage]\nunit = "x"\n[[sewage.duty]]\nnumber = "PJSIP/a"\n', "sewage"),
        ('[water]\nname = "x"\n[[water.duty]]\nnumber = "PJSIP/a"\n', "water.unit"),
        ('[water]\nunit = "w"\n', "water.duty"),
        ('[water]\nunit = "w"\n[[water.duty]]\nnumber = "SIP/a"\n', "water.duty[1].number"),
        (
            '[water]\nunit = "w"\n[[water.duty]]\nnumber = "PJSIP/a"\nhours = "8-17"\n',
            "water.duty[1].hours",
        ),
        (
            '[water]\nunit = "w"\n[[water.duty]]\nnumber = "PJSIP/a"\nhours = "09:00-09:00"\n',
            "water.duty[1].hours",
        ),
        ('[water]\nunit = "w"\ncolour = 1\n[[water.duty]]\nnumber = "PJSIP/a"\n', "water.colour"),
        ("[water\n", "file"),
    ],
)
def test_a_file_that_does_not_fit_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "utilities.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DirectoryError) as info:
        load(path)
    assert info.value.key == key
    assert str(path) in str(info.value)
