"""Schemathesis over the served OpenAPI document, against the real server on PostgreSQL.

Every operation of the document is called with generated requests — schema-valid ones and,
in the coverage phase, boundary and invalid ones — with an office token. The run passes only
with no 5xx (``not_a_server_error``), no response that breaks its schema
(``response_schema_conformance``), no schema-valid request refused as malformed
(``positive_data_acceptance``: the schema is as narrow as what the server accepts), and 405s
that keep their ``Allow`` header (``unsupported_method``, ``allow_header_conformance``).
Examples are bounded and the seed fixed, so the run is the same every time and stays short;
change ``SEED`` to explore further.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backend import Backend, free_port, hotline
from tests.conftest import fresh_database

ST = str(Path(sys.executable).with_name("st"))
SEED = 20261201
EXAMPLES = 25  # per operation and phase
CHECKS = (
    "not_a_server_error,response_schema_conformance,positive_data_acceptance,"
    "unsupported_method,allow_header_conformance"
)


def _users(env: dict[str, str]) -> str:
    assert hotline("db", "upgrade", env=env).returncode == 0
    assert hotline("units", "add", "--id", "water", "--name", "市水务局", env=env).returncode == 0
    for role in ("unit_handler", "unit_leader"):
        out = hotline("users", "add", "--name", role, "--role", role, "--unit", "water", env=env)
        assert out.returncode == 0, out.stderr
    out = hotline("users", "add", "--name", "督办", "--role", "supervisor", env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.asyncio
async def test_every_operation_under_schemathesis_has_no_5xx_and_keeps_its_schema(
    tmp_path: Path,
) -> None:
    async with fresh_database() as database:
        env = {
            "HOTLINE_DATABASE_URL": database,
            "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
            "HOTLINE_SERVER_AGI_PORT": str(free_port()),
            # the run sends requests without a token on purpose; do not throttle it
            "HOTLINE_SERVER_AUTH_MAX_FAILURES": "1000000",
        }
        token = _users(env)
        backend = Backend(env).start()
        try:
            run = subprocess.run(
                [
                    ST,
                    "run",
                    f"{backend.url}/api/v1/openapi.json",
                    "--url",
                    backend.url,
                    "--header",
                    f"Authorization: Bearer {token}",
                    "--checks",
                    CHECKS,
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--max-examples",
                    str(EXAMPLES),
                    "--seed",
                    str(SEED),
                    "--workers",
                    "1",  # two workers raced in hypothesis's source parsing (SystemError)
                    "--suppress-health-check",
                    "all",
                    # a WebSocket, not an HTTP operation: its bad input has its own test
                    # (tests/integration/test_console_socket.py); a plain GET is a 400
                    "--exclude-path",
                    "/api/v1/console/socket",
                    "--report-dir",
                    str(tmp_path),
                ],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=tmp_path,
            )
        finally:
            log = backend.stop()
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    tested = re.search(r"Tested: (\d+)", out)
    generated = re.search(r"(\d+) generated", out)
    assert tested and int(tested.group(1)) >= 30, out[-3000:]  # every operation was called
    assert generated and int(generated.group(1)) > 500, out[-3000:]
    assert "unexpected error on" not in log, log[-3000:]  # no handler failed (our 500s)
