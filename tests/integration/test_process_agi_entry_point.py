"""``hotline-agi`` as Asterisk runs it: a process per call, AGI on its stdin/stdout."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hotline.agi.testing import DEFAULT_ENV, env_block

BIN = Path(sys.executable).with_name("hotline-agi")
PROCESS_ENV = {k: v for k, v in DEFAULT_ENV.items() if k != "agi_network_script"}
PROCESS_ENV |= {"agi_request": "/usr/local/bin/hotline-agi", "agi_arg_1": "ivr"}


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/hotline.db"
    subprocess.run(
        [Path(sys.executable).with_name("hotline"), "db", "upgrade"],
        env={**os.environ, "HOTLINE_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


class Process:
    """Asterisk's side: feed the environment, read commands, answer them."""

    def __init__(self, url: str, extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "HOTLINE_DATABASE_URL": url, **(extra_env or {})}
        self.proc = subprocess.Popen(
            [BIN, "ivr"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(env_block(PROCESS_ENV))
        self.proc.stdin.flush()

    def command(self) -> str:
        assert self.proc.stdout
        return self.proc.stdout.readline().decode().rstrip("\n")

    def reply(self, text: str) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, str]:
        assert self.proc.stdin
        self.proc.stdin.close()
        code = self.proc.wait(timeout=20)
        assert self.proc.stderr
        return code, self.proc.stderr.read().decode()


def journal(url: str) -> list[tuple[str, str, str, str]]:
    path = url.split(":///", 1)[1]
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT caller, digits, route, outcome FROM ivr_calls").fetchall()


REPLIES = {
    "STREAM FILE": "200 result=0 endpos=4000",
    "GET DATA": "200 result= (timeout)",
    "GET VARIABLE": "200 result=0",
    "SET VARIABLE": "200 result=1",
    "ANSWER": "200 result=0",
}


def test_a_call_through_process_agi_sets_the_route_and_is_journaled(database: str) -> None:
    p = Process(database)
    commands = []
    while (command := p.command()) != "":
        commands.append(command)
        if command.startswith("STREAM FILE hotline/welcome"):
            p.reply("200 result=50 endpos=4000")  # key 2: help
        else:
            p.reply(REPLIES[" ".join(command.split()[:2]) if " " in command else command])
    code, err = p.finish()
    assert code == 0, err
    assert commands[0] == "ANSWER"
    assert commands[1] == "STREAM FILE hotline/welcome 0123456789*#"
    sets = [c for c in commands if c.startswith("SET VARIABLE")]
    assert "SET VARIABLE HOTLINE_TYPE help" in sets
    assert sets[-1] == "SET VARIABLE HOTLINE_ROUTE queue"  # last: the dialplan acts on it
    assert journal(database) == [("13800138000", "2", "queue:help", "routed")]
    assert "13800138000" not in err  # rule Y-1: no clear number in the script's log


def test_inline_hangup_ends_the_script_cleanly(database: str) -> None:
    p = Process(database)
    assert p.command() == "ANSWER"
    p.reply("200 result=0")
    assert p.command().startswith("STREAM FILE")
    p.reply("HANGUP")
    p.reply("200 result=-1 endpos=300")
    code, err = p.finish()
    assert code == 0
    assert "Traceback" not in err
    assert journal(database) == [("13800138000", "", "", "hangup")]


def test_dead_channel_511_ends_the_script_cleanly(database: str) -> None:
    p = Process(database)
    assert p.command() == "ANSWER"
    p.reply("511 Command Not Permitted on a dead channel or intercept routine")
    code, err = p.finish()
    assert (code, "Traceback" in err) == (0, False)
    assert journal(database)[0][3] == "hangup"


def test_sighup_from_asterisk_ends_the_script_cleanly(database: str) -> None:
    p = Process(database)
    assert p.command() == "ANSWER"
    p.proc.send_signal(signal.SIGHUP)
    p.reply("200 result=0")
    code, err = p.finish()
    assert (code, "Traceback" in err) == (0, False)
    assert journal(database)[0][3] == "hangup"


def test_bad_settings_exit_2_naming_the_key(database: str) -> None:
    p = Process(database, {"HOTLINE_IVR_ATTEMPTS": "many"})
    code, err = p.finish()
    assert code == 2
    assert "ivr.attempts" in err and "HOTLINE_IVR_ATTEMPTS" in err
    assert "Traceback" not in err
