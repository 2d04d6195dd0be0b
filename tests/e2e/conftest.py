"""The e2e tier: a real Asterisk 22 in the lab root, real SIPp callers, the real backend.

The session starts its own lab instance ("e2e") on ports of its own, so it runs beside a
developer's lab; each test that needs the backend starts ``hotline serve`` as a subprocess on
a fresh PostgreSQL database and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hotline.config.settings import load_settings
from hotline.lab.instance import HOME_IN_ROOT, Lab, _running_pid
from tests.conftest import PG_URL

HOTLINE = str(Path(sys.executable).with_name("hotline"))
E2E_ENV = {
    "HOTLINE_LAB_INSTANCE": "e2e",
    "HOTLINE_LAB_SIP_PORT": "15060",
    "HOTLINE_LAB_HTTP_PORT": "18088",
    "HOTLINE_LAB_AMI_PORT": "15038",
    "HOTLINE_LAB_RTP_START": "21000",
    "HOTLINE_LAB_RTP_END": "21999",
    "HOTLINE_SERVER_AGI_PORT": "14573",
    "HOTLINE_SERVER_HTTP_PORT": "18080",
}


def hotline(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOTLINE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def lab_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    prompts = tmp_path_factory.mktemp("prompts")
    return {**E2E_ENV, "HOTLINE_PROMPTS_BUILD_DIR": str(prompts)}


@pytest.fixture(scope="session")
def lab(lab_env: dict[str, str]) -> Iterator[Lab]:
    """A running lab instance for the whole session (built on first use, then cached)."""
    hotline("lab", "down", env=lab_env)  # a leftover from an interrupted run
    up = hotline("lab", "up", env=lab_env, timeout=600)
    if up.returncode != 0:
        pytest.fail(f"the Asterisk lab did not start:\n{up.stdout}\n{up.stderr}", False)
    settings = load_settings(env={**os.environ, **lab_env})
    lab = Lab(settings)
    try:
        yield lab
    finally:
        hotline("lab", "down", env=lab_env)
    if not other_instances_running(lab):  # then nothing of the lab stays mounted
        assert not os.path.ismount(lab.root / "proc"), "lab down left /proc mounted"


def other_instances_running(lab: Lab) -> bool:
    homes = lab.root / HOME_IN_ROOT.lstrip("/")
    return any(
        _running_pid(p, f"{HOME_IN_ROOT}/{p.parent.name}/etc/asterisk.conf") is not None
        for p in homes.glob("*/asterisk.pid")
        if p.parent.name != lab.lab.instance
    )


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one backend run; dropped afterwards."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


class Backend:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        migrated = hotline("db", "upgrade", env=self.env)
        assert migrated.returncode == 0, migrated.stderr
        self.proc = subprocess.Popen(
            [HOTLINE, "serve"],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{self.env['HOTLINE_SERVER_HTTP_PORT']}/healthz"
        for _ in range(150):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"backend exited: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if json.loads(resp.read())["status"] == "ok":
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("backend did not answer /healthz")

    def stop(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            return ""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def backend(lab_env: dict[str, str], database: str) -> Iterator[Callable[..., Backend]]:
    """Start ``hotline serve`` against the lab (optionally with a TOML config)."""
    started: list[Backend] = []

    def start(config: Path | None = None) -> Backend:
        env = {**lab_env, "HOTLINE_DATABASE_URL": database}
        if config is not None:
            env["HOTLINE_CONFIG"] = str(config)
        b = Backend(env)
        b.start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


async def journal_rows(url: str, caller: str, wait: float = 10.0) -> list[dict[str, object]]:
    """The backend's journal rows for ``caller`` (written just after the AGI session ends)."""
    engine = create_async_engine(url)
    query = sa.text(
        "SELECT call_id, caller, script, digits, route, outcome, steps FROM ivr_calls "
        "WHERE caller = :caller ORDER BY id"
    )
    try:
        deadline = time.monotonic() + wait
        while True:
            async with engine.connect() as conn:
                rows = [dict(r) for r in (await conn.execute(query, {"caller": caller})).mappings()]
            if rows or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
