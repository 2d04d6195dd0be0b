"""The real backend for tests that need it: `hotline` commands and `hotline serve` in a process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HOTLINE = str(Path(sys.executable).with_name("hotline"))
TEST_ONLY = "HOTLINE_E2E_"  # the test tier's own variables (tests/e2e/conftest.py), not settings


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment with ``env`` over it, without the test-only variables (the
    CLI would warn that they name no setting)."""
    return {k: v for k, v in {**os.environ, **env}.items() if not k.startswith(TEST_ONLY)}


def hotline(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOTLINE, *args], env=child_env(env), capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Backend:
    """``hotline db upgrade`` then ``hotline serve``, ready once /healthz answers."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.log = tempfile.NamedTemporaryFile("w+", prefix="hotline-serve-", suffix=".log")  # noqa: SIM115 (closed in stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['HOTLINE_SERVER_HTTP_PORT']}"

    def start(self, upgrade: bool = True) -> Backend:
        """``upgrade=False``: no ``hotline db upgrade`` first (a database that is down, say)."""
        if upgrade:
            migrated = hotline("db", "upgrade", env=self.env)
            assert migrated.returncode == 0, migrated.stderr
        self.proc = subprocess.Popen(
            [HOTLINE, "serve"],
            env=child_env(self.env),
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            text=True,
        )
        return self.wait_healthz()

    def wait_healthz(self, attempts: int = 150) -> Backend:
        """Until /healthz answers ``ok`` (the process is up; not readiness, see /readyz)."""
        assert self.proc is not None
        for _ in range(attempts):
            if self.proc.poll() is not None:
                raise AssertionError(f"backend exited: {self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if json.loads(resp.read())["status"] == "ok":
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("backend did not answer /healthz")

    def readyz(self, timeout: float = 5) -> tuple[int, object]:
        """/readyz: its status code and JSON body (0 and the error when it did not answer)."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, None
        except (OSError, ValueError) as exc:
            return 0, f"{type(exc).__name__}: {exc}"

    def kill9(self) -> None:
        """SIGKILL ``hotline serve`` (a crash: no shutdown, no drain); ``start`` brings it back
        on the same settings, its output going on in the same log."""
        assert self.proc is not None and self.proc.poll() is None, "backend is not running"
        self.proc.kill()
        self.proc.wait(timeout=10)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> str:
        stuck = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=45)  # the backend bounds its shutdown to grace + 20 s
            except subprocess.TimeoutExpired:  # never left running: it would take the next
                stuck = True  # test's calls (same node name, same lab)
                self.proc.kill()
                self.proc.wait(timeout=10)
        out = self.output()
        self.log.close()
        keep = os.environ.get("HOTLINE_TEST_LOG_DIR")  # a developer's look at a failed run
        if keep:
            name = f"hotline-serve-{self.env.get('HOTLINE_SERVER_NODE_ID', '')}-{os.getpid()}"
            Path(keep).mkdir(parents=True, exist_ok=True)
            Path(keep, f"{name}-{time.time_ns()}.log").write_text(out, encoding="utf-8")
        assert not stuck, "hotline serve did not stop on SIGTERM:\n" + out[-3000:]
        return out
