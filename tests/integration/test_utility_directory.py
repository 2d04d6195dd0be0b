"""The utility duty directory on a real backend: the office reads it with the numbers on duty
now; a directory file that does not fit stops ``hotline serve`` with exit 2, naming the key."""

from __future__ import annotations

from pathlib import Path

from tests.backend import Backend, free_port, hotline
from tests.conftest import fresh_database
from tests.integration.test_agent_api import Client, user

FILE = """
[water]
unit = "water"
name = "市水务集团"
categories = ["water_main_burst"]
[[water.duty]]
number = "PJSIP/water-always"
[[water.duty]]
number = "PJSIP/water-never"
hours = "{never}"
"""


async def test_the_office_reads_the_duty_directory_and_a_bad_file_stops_the_start(
    tmp_path: Path,
) -> None:
    async with fresh_database() as url:
        path = tmp_path / "utilities.toml"
        env = {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
            "HOTLINE_SERVER_AGI_PORT": str(free_port()),
            "HOTLINE_UTILITY_DIRECTORY_FILE": str(path),
        }
        assert hotline("db", "upgrade", env=env).returncode == 0
        assert hotline("units", "add", "--id", "water", "--name", "水务", env=env).returncode == 0
        disp, handler = user(env, "派单", "dispatcher"), user(env, "经办", "unit_handler", "water")

        path.write_text(FILE.format(never="8:00-9:00"), encoding="utf-8")
        refused = hotline("serve", env=env, timeout=60)
        assert refused.returncode == 2
        assert "water.duty[2].hours" in refused.stderr and str(path) in refused.stderr

        path.write_text(FILE.format(never="00:00-00:01"), encoding="utf-8")
        backend = Backend(env).start(upgrade=False)
        try:
            api = Client(backend)
            status, body = api.call(disp, "GET", "/api/v1/utilities")
            assert status == 200
            (water,) = body["utilities"]
            assert (water["unit"], water["categories"]) == ("water", ["water_main_burst"])
            assert [(d["number"], d["hours"]) for d in water["duty"]] == [
                ("PJSIP/water-always", "00:00-24:00"),
                ("PJSIP/water-never", "00:00-00:01"),
            ]
            assert water["duty"][0]["on_duty"] is True
            assert api.call(handler, "GET", "/api/v1/utilities")[0] == 403
        finally:
            backend.stop()
