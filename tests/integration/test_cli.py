"""The ``hotline`` command as an operator meets it: exit codes, messages, start and stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

import pytest

from hotline.config.settings import DEFAULT_TEXTS

HOTLINE = str(Path(sys.executable).with_name("hotline"))


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOTLINE, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"HOTLINE_SERVER_HTTP_PORT": "eighty"}, "server.http_port"),
        ({"HOTLINE_DATABASE_URL": "oracle://x"}, "database.url"),
        ({"HOTLINE_CITY_TIMEZONE": "Nowhere/City"}, "city.timezone"),
    ],
)
def test_wrong_config_exits_2_with_a_message_naming_the_key(
    env: dict[str, str], needle: str
) -> None:
    result = run("serve", env=env)
    assert result.returncode == 2
    assert needle in result.stderr and next(iter(env)) in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_config_file_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text("[server]\nagi_port = 0\n")
    result = run("--config", str(cfg), "serve")
    assert result.returncode == 2
    assert "server.agi_port" in result.stderr and str(cfg) in result.stderr


def test_typo_in_an_environment_name_is_warned_about(tmp_path: Path) -> None:
    result = run("config", "show", env={"HOTLINE_DATABSE_URL": "x"}, cwd=tmp_path)
    assert result.returncode == 0
    assert "HOTLINE_DATABSE_URL names no setting" in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run("serve", env={"HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db"})
    assert result.returncode == 2
    assert "hotline db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_starts_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        "HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db",
        "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
        "HOTLINE_SERVER_AGI_PORT": str(free_port()),
    }
    assert run("db", "upgrade", env=env).returncode == 0
    proc = subprocess.Popen(
        [HOTLINE, "serve"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        for _ in range(100):
            try:
                url = f"http://127.0.0.1:{env['HOTLINE_SERVER_HTTP_PORT']}/healthz"
                with urllib.request.urlopen(url, timeout=1) as resp:
                    health = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.1)
        assert health is not None and health["status"] == "ok"
        assert health["agi"]["port"] == int(env["HOTLINE_SERVER_AGI_PORT"])
        with socket.create_connection(("127.0.0.1", int(env["HOTLINE_SERVER_AGI_PORT"]))):
            pass  # FastAGI accepts
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "shutting down" in err


def test_serve_on_a_port_taken_says_so_not_that_the_database_failed(tmp_path: Path) -> None:
    env = {
        "HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db",
        "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
    }
    assert run("db", "upgrade", env=env).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["HOTLINE_SERVER_AGI_PORT"] = str(taken.getsockname()[1])
        result = run("serve", env=env)
    assert result.returncode == 1
    assert "cannot start:" in result.stderr and "address already in use" in result.stderr
    assert "database" not in result.stderr.split("cannot start:")[1]
    assert "Traceback" not in result.stderr


def prompt_env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        "HOTLINE_PROMPTS_BUILD_DIR": str(tmp_path / "out"),
        "HOTLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db",
        **more,
    }


TEXTS = len(DEFAULT_TEXTS) + 1  # every text, and the silence clip


def test_prompts_are_mandarin_8khz_wav_cached_and_overridable(tmp_path: Path) -> None:
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    env = prompt_env(tmp_path, HOTLINE_PROMPTS_RECORDED_DIR=str(recorded))
    first = run("prompts", "build", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("generated") == TEXTS
    with wave.open(str(tmp_path / "out" / "welcome.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() > 8000  # more than a second of speech
    second = run("prompts", "build", env=env)
    assert second.stdout.count("cached") == TEXTS  # same texts: not spoken again
    # A recorded file replaces the generated one of the same name, converted to 8 kHz.
    with wave.open(str(recorded / "welcome.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(b"\x00\x01" * 2 * 44100)
    third = run("prompts", "build", env=env)
    assert "recorded" in third.stdout and third.stdout.count("cached") == TEXTS - 1
    with wave.open(str(tmp_path / "out" / "welcome.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (8000, 1, 8000)


def test_changed_prompt_text_is_spoken_again(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    env = prompt_env(tmp_path)
    assert run("prompts", "build", env=env).returncode == 0
    cfg.write_text('[prompts.texts]\nwelcome = "您好，这里是测试热线。"\n')
    out = run("--config", str(cfg), "prompts", "build", env=env)
    lines = out.stdout.splitlines()
    assert f"generated {tmp_path / 'out' / 'welcome.wav'}" in lines
    assert sum(line.startswith("cached") for line in lines) == TEXTS - 1  # the others stay


def test_unit_names_become_prompts_once_units_exist(tmp_path: Path) -> None:
    env = prompt_env(tmp_path)
    assert run("db", "upgrade", env=env).returncode == 0
    assert run("units", "add", "--id", "water", "--name", "市水务局", env=env).returncode == 0
    out = run("prompts", "build", env=env)
    assert f"generated {tmp_path / 'out' / 'unit_water.wav'}" in out.stdout.splitlines()
    with wave.open(str(tmp_path / "out" / "unit_water.wav")) as w:
        assert w.getframerate() == 8000 and w.getnframes() > 4000
