"""Faults on demand (issue 9): a PostgreSQL and a Redis of the test's own, to stop, kill, freeze.

The machine's own PostgreSQL (5432) and Redis (6379) are never touched: each instance here is a
server the test started itself, on a spare port of 127.0.0.1, in a temporary directory of its
own, and every signal goes to a pid it started (or, for PostgreSQL, to a child of that pid).

* :class:`PgInstance` — ``initdb`` once (as the ``postgres`` OS user, trust auth), then
  ``start`` / ``stop`` (fast shutdown) / ``kill9`` / ``freeze`` (SIGSTOP the postmaster and its
  backends: connections are accepted by the kernel and then nothing answers) / ``thaw``.
* :class:`RedisInstance` — ``redis-server`` without persistence: ``kill9`` loses everything,
  ``restart`` brings an empty server back on the same port.
* :class:`StampedCall` — a SIPp call with an AMI listener that stamps each event on arrival, so
  a test can act during the call (kill the backend mid-recording) and measure the silence
  between the AGI commands Asterisk ran.
* :func:`http` — one HTTP request that reports status, headers, body and elapsed time, errors
  included (the tests need to see a 503, not an exception).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from hotline.lab import sipp
from hotline.lab.ami import AMIListener, Message, parse_block
from hotline.lab.calls import WATCHED, ObservedCall
from hotline.lab.dtmf import key_files
from hotline.lab.instance import Lab
from hotline.lab.sipp import CallPlan, CallResult
from tests.backend import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"


class FaultError(AssertionError):
    """A fault instance did not do what was asked (a test failure, never a skip)."""


def _need(path: Path | str) -> str:
    found = shutil.which(str(path))
    if found is None:
        raise FaultError(f"{path}: not installed (scripts/setup installs it)")
    return found


def alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie is not)?"""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc: each process's parent pid)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            out.append(int(entry))
    return sorted(out)


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise FaultError(f"{what}: pids {[p for p in pids if alive(p)]} still alive")
        time.sleep(0.05)


# -- PostgreSQL ---------------------------------------------------------------------------------
class PgInstance:
    """A PostgreSQL cluster of its own on 127.0.0.1:``port`` (trust auth, user ``postgres``)."""

    def __init__(self, port: int | None = None) -> None:
        for binary in ("initdb", "postgres", "pg_isready", "psql"):
            _need(PG_BIN / binary)
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-faults-pg-"))
        self.data = self.dir / "data"
        self.sockets = self.dir / "run"
        self.logfile = self.dir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._frozen: list[int] = []
        self._uid = pwd.getpwnam(PG_USER).pw_uid
        self._gid = grp.getgrnam(PG_USER).gr_gid
        self.sockets.mkdir()
        for path in (self.dir, self.sockets):
            os.chown(path, self._uid, self._gid)
        self._as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        )

    def _as_postgres(self, cmd: list[str], timeout: float = 60) -> str:
        done = subprocess.run(
            cmd,
            user=self._uid,
            group=self._gid,
            extra_groups=[],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise FaultError(f"{cmd[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    @property
    def pid(self) -> int:
        """The postmaster's pid."""
        if self.proc is None or self.proc.poll() is not None:
            raise FaultError("PostgreSQL is not running")
        return self.proc.pid

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 30) -> PgInstance:
        """Start the postmaster and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.logfile, "ab")  # noqa: SIM115 (the child keeps it; closed below)
        try:
            self.proc = subprocess.Popen(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    # fsync off: a commit is in the kernel's hands (a crash of the server
                    # keeps it, only one of the machine would not)
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=60",
                ],
                user=self._uid,
                group=self._gid,
                extra_groups=[],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise FaultError(f"PostgreSQL exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise FaultError(f"PostgreSQL did not accept connections:\n{self.log()}")
            time.sleep(0.1)
        return self

    def ready(self) -> bool:
        done = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            timeout=10,
        )
        return done.returncode == 0

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT to the postmaster): sessions are ended, data is kept."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.thaw()  # a frozen server cannot shut down
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise FaultError(f"PostgreSQL did not shut down:\n{self.log()}") from None

    def kill9(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash would; waits until all are gone,
        so that ``start`` can run the crash recovery at once."""
        pids = [self.pid, *children(self.pid)]
        self._frozen = []
        _signal(pids, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)
        _wait_gone(pids, 10, "PostgreSQL kill -9")

    def freeze(self) -> list[int]:
        """SIGSTOP the postmaster, then every backend it has (until no new one appears)."""
        postmaster = self.pid
        os.kill(postmaster, signal.SIGSTOP)  # first: it forks no new backend while stopped
        stopped = [postmaster]
        while True:
            new = [p for p in children(postmaster) if p not in stopped]
            if not new:
                break
            _signal(new, signal.SIGSTOP)
            stopped += new
        self._frozen = stopped
        return stopped

    def thaw(self) -> None:
        """SIGCONT whatever :meth:`freeze` stopped (backends first, the postmaster last)."""
        _signal(list(reversed(self._frozen)), signal.SIGCONT)
        self._frozen = []

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        done = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                PG_USER,
                "-d",
                dbname,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise FaultError(f"psql {sql!r}: {done.stderr}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """A new database; its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log(self, tail: int = 4000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        """Stop (or, if that fails, kill) the server and remove its directory."""
        try:
            self.stop()
        except FaultError:
            if self.proc is not None and self.proc.poll() is None:
                self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- Redis --------------------------------------------------------------------------------------
class RedisInstance:
    """``redis-server`` on 127.0.0.1:``port``, keeping nothing on disk."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = _need("redis-server")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-faults-redis-"))
        self.logfile = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> RedisInstance:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.logfile),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                raise FaultError(f"redis-server exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise FaultError(f"redis-server did not answer PING:\n{self.log()}")
            time.sleep(0.05)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill9(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise FaultError("redis-server is not running")
        self.proc.kill()
        self.proc.wait(10)

    def restart(self) -> RedisInstance:
        """Start again on the same port (empty: nothing was persisted)."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()
        return self.start()

    def log(self, tail: int = 4000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- HTTP ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reply:
    status: int  # 0: no answer within the timeout (or the connection failed)
    headers: dict[str, str]
    body: Any  # parsed JSON, or bytes, or the error text when status is 0
    elapsed: float


def http(url: str, token: str = "", method: str = "GET", timeout: float = 5.0) -> Reply:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, head, raw = resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, dict(exc.headers.items()), exc.read()
    except OSError as exc:  # a timeout, a refused connection
        return Reply(0, {}, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    elapsed = time.monotonic() - started
    body: Any = raw
    if head.get("Content-Type", "").startswith("application/json"):
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
    return Reply(status, head, body, elapsed)


def poll(check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """``check()`` until it returns something true (returned) or ``timeout`` passes (then the
    last result is returned; an exception counts as None: not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)


async def apoll(check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """:func:`poll` off the event loop (blocking checks run in a thread)."""
    return await asyncio.to_thread(poll, check, timeout, every)


# -- calls --------------------------------------------------------------------------------------
class StampedListener(AMIListener):
    """The lab's AMI listener, with each event's arrival time (``time.monotonic``).

    AMI events carry no time unless ``timestampevents`` is on in manager.conf (it is not in the
    lab); arrival over loopback on a free event loop is within milliseconds of the event.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: list[float] = []

    async def _pump(self) -> None:
        while True:
            msg = parse_block(await self._read_block())
            if "Event" in msg:
                async with self._changed:
                    self.stamps.append(time.monotonic())
                    self.events.append(msg)
                    self._changed.notify_all()


@dataclass(slots=True)
class Gap:
    """Silence on the AGI channel: from the end of one thing Asterisk did for the backend to
    the start of the next."""

    seconds: float
    after: str  # "AGI start" or the AGI command that ended
    before: str  # the next AGI command, or what followed the AGI session


@dataclass(slots=True)
class Timeline:
    events: list[tuple[float, Message]] = field(default_factory=list)
    end: float | None = None  # when the caller's side ended (SIPp exited)

    def agi_gaps(self) -> list[Gap]:
        """The silences of the AGI session, as Asterisk ran it: from the AGI application's start
        (Newexten AGI) or the end of a command that sounds (``AGIExecEnd``) to the start of the
        next one that sounds (``AGIExecStart``); or, with none, to what ended the wait: the next
        dialplan step (the backend let the call go), the caller's hang-up (``HangupRequest``,
        ``Hangup``) or, when none of these came, the end of the call on the caller's side
        (Asterisk holds a channel whose AGI script does not answer, so its ``Hangup`` may come
        long after the caller left). Commands that play nothing (SET VARIABLE, WAIT FOR DIGIT,
        …) are part of the silence around them."""
        gaps: list[Gap] = []
        mark: tuple[float, str] | None = None
        for t, e in self.events:
            kind, command = e.get("Event"), e.get("Command", "")
            if kind == "Newexten" and e.get("Application") == "AGI":
                mark = (t, "AGI start")
            elif kind == "AGIExecEnd":
                if audible(command) or mark is None:
                    mark = (t, command)
            elif mark is None:  # a command that sounds is running, or no AGI session yet
                continue
            elif kind == "AGIExecStart":
                if audible(command):
                    gaps.append(Gap(t - mark[0], mark[1], command))
                    mark = None
            elif kind in ("Newexten", "HangupRequest", "SoftHangupRequest", "Hangup"):
                what = e.get("Application", "") if kind == "Newexten" else "hangup"
                gaps.append(Gap(t - mark[0], mark[1], what))
                mark = None
        if mark is not None and self.end is not None:
            gaps.append(Gap(self.end - mark[0], mark[1], "the caller left, still waiting"))
        return gaps


AUDIBLE = (
    "STREAM FILE",
    "CONTROL STREAM FILE",
    "GET DATA",
    "GET OPTION",
    "RECORD FILE",  # the beep, then the caller speaks
    "SAY ",
    "EXEC Playback",
    "EXEC Background",
    "EXEC MusicOnHold",
    "EXEC StartMusicOnHold",
)


def audible(command: str) -> bool:
    """Does this AGI command put sound on the line (or take the caller's)?"""
    return command.upper().startswith(tuple(a.upper() for a in AUDIBLE))


Step = tuple[str, Any]  # ("keys", "7#") · ("wait", ms) · ("speak", None): 7 s of speech


class StampedCall:
    """One SIPp call placed in the background, watched over AMI; act while it runs.

    ``async with StampedCall(lab, plan) as call: await call.wait_agi("RECORD FILE")`` …
    ``seen, timeline = await call.done()``.
    """

    def __init__(
        self,
        lab: Lab,
        plan: CallPlan,
        timeout_s: float = 90.0,
        steps: list[Step] | None = None,
    ) -> None:
        """``steps``: what the caller does (:func:`place_call_steps`); None: ``plan`` as
        :func:`hotline.lab.sipp.place_call` plays it."""
        self.lab, self.plan, self.timeout_s, self.steps = lab, plan, timeout_s, steps
        creds = lab.credentials()
        self.ami = StampedListener(
            "127.0.0.1", lab.lab.ami_port, creds.ami_user, creds.ami_password
        )
        self._task: asyncio.Task[CallResult] | None = None
        self.result: CallResult | None = None

    async def __aenter__(self) -> StampedCall:
        await self.ami.__aenter__()
        self._task = asyncio.create_task(self._place())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), self.timeout_s + 10)
        await self.ami.__aexit__()

    def _mine(self, e: Message) -> bool:
        return e.get("CallerIDNum") == self.plan.caller

    async def wait_for(self, match: Callable[[Message], bool], timeout: float) -> Message:
        return await self.ami.wait_for(lambda e: self._mine(e) and match(e), timeout)

    async def wait_agi(self, command: str, timeout: float = 60) -> Message:
        """The call's first AGI command starting with ``command`` (e.g. ``RECORD FILE``)."""

        def started(e: Message) -> bool:
            return e.get("Event") == "AGIExecStart" and e.get("Command", "").startswith(command)

        return await self.wait_for(started, timeout)

    async def done(self) -> tuple[ObservedCall, Timeline]:
        """Wait for the call to end: what Asterisk did (as ``observe_call`` reports it) and the
        call's events with their arrival times."""
        assert self._task is not None
        self.result = await self._task
        end = time.monotonic()
        await asyncio.sleep(0.3)  # the last events (Hangup) after SIPp's BYE
        pairs = [
            (t, e) for t, e in zip(self.ami.stamps, self.ami.events, strict=True) if self._mine(e)
        ]
        mine = [e for _, e in pairs]
        events = [
            e for e in mine if e.get("Event") == "UserEvent" and e.get("UserEvent") in WATCHED
        ]
        steps = [
            (e.get("Context", ""), e.get("Application", ""), e.get("AppData", ""))
            for e in mine
            if e.get("Event") == "Newexten"
        ]
        agi = [e.get("Command", "") for e in mine if e.get("Event") == "AGIExecStart"]
        return ObservedCall(self.plan, self.result, events, steps, agi), Timeline(pairs, end)

    async def _place(self) -> CallResult:
        if self.steps is None:
            return await sipp.place_call(
                self.lab.root,
                f"{self.lab.home_in_root}/sipp",
                self.lab.lab.sip_port,
                self.plan,
                self.timeout_s,
            )
        return await place_call_steps(self.lab, self.plan, self.steps, self.timeout_s)


async def observe_steps(
    lab: Lab, plan: CallPlan, steps: list[Step] | None = None, timeout_s: float = 90.0
) -> ObservedCall:
    """:func:`hotline.lab.calls.observe_call`, with the caller doing ``steps``."""
    async with StampedCall(lab, plan, timeout_s, steps) as call:
        seen, _ = await call.done()
    return seen


def scenario_steps(plan: CallPlan, steps: list[Step], pcaps: list[str]) -> str:
    """A SIPp scenario like :func:`hotline.lab.sipp.scenario`, but the call does ``steps`` in
    order after the answer (and ``plan.answer_wait_ms``), then holds ``plan.hold_ms``. Keys
    are the DTMF files ``pcaps``, one per key in the order the steps press them, each followed
    by ``plan.gap_ms``; speech plays in the background (the next step starts at once). Every
    wait also takes Asterisk's BYE."""
    names = {"caller": plan.caller, "caller_name": escape(plan.caller_name)}
    text = sipp.SCENARIO_HEAD.format(answer_wait_ms=plan.answer_wait_ms, **names)
    n, keys = 2, iter(pcaps)
    for kind, arg in steps:
        if kind == "keys":
            for _ in str(arg):
                text += sipp.SCENARIO_KEY.format(pcap=next(keys), gap_ms=plan.gap_ms, next=n)
                n += 1
        elif kind == "wait":
            text += (
                f'  <recv request="BYE" timeout="{int(arg)}" ontimeout="step{n}" '
                'next="remote_bye"/>\n'
                f'  <label id="step{n}"/>\n'
            )
            n += 1
        elif kind == "speak":
            pcap = f"{sipp.PCAP_DIR}/g711a.pcap"
            text += f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
        else:
            raise ValueError(f"not a call step: {kind!r}")
    return text + sipp.SCENARIO_TAIL.format(hold_ms=plan.hold_ms, **names)


async def place_call_steps(
    lab: Lab, plan: CallPlan, steps: list[Step], timeout_s: float = 90.0
) -> CallResult:
    """:func:`hotline.lab.sipp.place_call` with the call doing ``steps`` (``plan.dtmf`` and
    ``plan.speak_after_ms`` are not used: say them as steps)."""
    workdir_in_root = f"{lab.home_in_root}/sipp"
    workdir = lab.root / workdir_in_root.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    local_port = sipp.free_udp_port()
    name = f"call-{local_port}"
    keys = "".join(str(arg) for kind, arg in steps if kind == "keys")
    # one renumbered run over all keys, so later keys follow earlier ones (hotline.lab.dtmf)
    files = key_files(lab.root / sipp.PCAP_DIR.lstrip("/"), keys, workdir, name)
    pcaps = [f"{workdir_in_root}/{k.name}" for k in files]
    (workdir / f"{name}.xml").write_text(scenario_steps(plan, steps, pcaps))
    return await sipp.run_scenario(
        lab.root, workdir_in_root, lab.lab.sip_port, plan.number, local_port, timeout_s
    )
