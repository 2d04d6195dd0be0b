"""The e2e tier: a real Asterisk 22 in the lab root, real SIPp callers, the real backend.

The session starts its own lab instance ("e2e") on ports of its own, so it runs beside a
developer's lab (``HOTLINE_E2E_INSTANCE`` and ``HOTLINE_E2E_PORT_OFFSET`` move it, so two e2e
runs can run side by side); each test that needs the backend starts ``hotline serve`` as a
subprocess on a fresh PostgreSQL database and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hotline.agi.ari import AriClient
from hotline.config.settings import load_settings
from hotline.lab.instance import HOME_IN_ROOT, Lab, _running_pid
from tests.backend import Backend, hotline


def e2e_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The e2e instance and its ports; ``HOTLINE_E2E_INSTANCE`` and ``HOTLINE_E2E_PORT_OFFSET``
    shift them so two e2e runs can share the machine (e.g. ``e2eb`` with offset 200: SIP
    15260, ARI 18288, AMI 15238, RTP 23000-23999, FastAGI 14773, HTTP 18280). The SIP port
    also reserves the next 13 (the citizen, operator and utility phones); RTP moves by ten
    times the offset, so any multiple of 100 keeps the ranges apart."""
    instance = environ.get("HOTLINE_E2E_INSTANCE", "e2e")
    raw = environ.get("HOTLINE_E2E_PORT_OFFSET", "0")
    try:
        offset = int(raw)
    except ValueError:
        raise pytest.UsageError(f"HOTLINE_E2E_PORT_OFFSET: not an integer: {raw!r}") from None
    if not 0 <= offset <= 3000:
        raise pytest.UsageError(f"HOTLINE_E2E_PORT_OFFSET must be 0..3000, got {offset}")
    return {
        "HOTLINE_LAB_INSTANCE": instance,
        "HOTLINE_LAB_SIP_PORT": str(15060 + offset),
        "HOTLINE_LAB_HTTP_PORT": str(18088 + offset),
        "HOTLINE_LAB_AMI_PORT": str(15038 + offset),
        "HOTLINE_LAB_RTP_START": str(21000 + 10 * offset),
        "HOTLINE_LAB_RTP_END": str(21999 + 10 * offset),
        "HOTLINE_SERVER_AGI_PORT": str(14573 + offset),
        "HOTLINE_SERVER_HTTP_PORT": str(18080 + offset),
    }


E2E_ENV = e2e_env(os.environ)


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


class LabBackend(Backend):
    """`hotline serve` wired to the lab (FastAGI, ARI), with helpers for the office's setup."""

    def cli(self, *args: str) -> str:
        out = hotline(*args, env=self.env)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def user(self, name: str, role: str, unit: str = "") -> str:
        """A new user's bearer token."""
        extra = ["--unit", unit] if unit else []
        return self.cli("users", "add", "--name", name, "--role", role, *extra).splitlines()[-1]

    def api(self, token: str, method: str, path: str, body: object = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = resp.read()
            return (
                json.loads(body) if resp.headers.get_content_type() == "application/json" else body
            )

    def agent_on_duty(self) -> str:
        token = self.user("坐席", "agent")
        self.api(token, "POST", "/api/v1/agents/me/login", {"extension": "8001"})
        return token


@pytest.fixture
def backend(
    lab: Lab, lab_env: dict[str, str], database: str, tmp_path: Path
) -> Iterator[Callable[..., LabBackend]]:
    """Start ``hotline serve`` against the lab (optionally with a TOML config)."""
    started: list[LabBackend] = []
    creds = lab.credentials()

    def start(config: Path | None = None, **extra: str) -> LabBackend:
        """``extra``: more settings, e.g. ``HOTLINE_SERVER_AGI_ALLOWED_PEERS="127.0.0.1"``."""
        env = {
            **lab_env,
            "HOTLINE_DATABASE_URL": database,
            "HOTLINE_ARI_URL": lab.ari_url,
            "HOTLINE_ARI_USER": creds.ari_user,
            "HOTLINE_ARI_PASSWORD": creds.ari_password,
            "HOTLINE_SERVER_AGI_SECRET": creds.agi_secret,  # the dialplan's AGI URL has it
            "HOTLINE_ARI_RECORDINGS_DIR": str(tmp_path / "recordings"),
            "HOTLINE_SERVER_SPOOL_DIR": str(tmp_path / "spool"),
        }
        if config is not None:
            env["HOTLINE_CONFIG"] = str(config)
        env.update(extra)
        b = LabBackend(env)
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


@pytest.fixture
async def ari(lab: Lab) -> AsyncIterator[AriClient]:
    """The lab's ARI, as a test looks at what Asterisk has (bridges, channels)."""
    creds = lab.credentials()
    async with AriClient(lab.ari_url, creds.ari_user, creds.ari_password) as client:
        yield client
