"""IVR load run: concurrent SIPp callers walking the menu, stepped until calls fail.

Every caller dials 12345 in the lab, presses 1 during the welcome, hears the 110/119/120 notice
and the transfer prompt and is handed to the queue's entry point (``hotline-queue``), then
hangs up 14 s after its key (a caller's patience: the notice and transfer prompt take 11 s).
For each step of concurrency the run offers that many simultaneous callers for a while and
counts

* SIPp's failed calls (no answer, a lost message, a time-out), and
* callers that were not handed to the queue as a consultation (the dialplan's
  ``HotlineHandoff`` user event, seen on AMI; for the backend also its journal rows, with how
  long the AGI sessions lasted and how far the callers who were not handed on got),

and reads the CPU that the lab's Asterisk, the backend and SIPp used, and how busy the whole
machine was (PostgreSQL, Redis and the kernel included). The knee is the last step with zero
failures.

The baseline, at the same step: the same welcome, key and hand-off as a static dialplan menu
(lab number 12399, no backend), so the ratio shows what running the IVR in the backend costs
Asterisk. It needs root (the lab) and runs a lab instance ``bench`` on ports of its own.

    sudo .venv/bin/python bench/ivr_load.py [--steps 200,400,500,600,800,1000] [--seconds 60]
        [--modes backend,static]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotline.config.settings import load_settings
from hotline.lab.ami import AMIListener
from hotline.lab.dtmf import key_files
from hotline.lab.instance import Lab
from hotline.lab.sipp import PCAP_DIR, CallPlan, free_udp_port, scenario
from tests.backend import Backend, free_port, hotline
from tests.conftest import fresh_database

BENCH_ENV = {
    "HOTLINE_LAB_INSTANCE": "bench",
    "HOTLINE_LAB_SIP_PORT": "25060",
    "HOTLINE_LAB_HTTP_PORT": "28088",
    "HOTLINE_LAB_AMI_PORT": "25038",
    "HOTLINE_LAB_RTP_START": "30000",
    "HOTLINE_LAB_RTP_END": "39999",
    "HOTLINE_SERVER_AGI_PORT": "24573",
    "HOTLINE_LOG_LEVEL": "WARNING",
    "HOTLINE_PROMPTS_BUILD_DIR": "var/bench-prompts",
}
HOLD_MS = 14000  # after the key: the notice (I-6, 7.8 s), the transfer prompt (3.2 s), slack
CALL_SECONDS = 1.5 + 1.2 + HOLD_MS / 1000  # answer wait, key gap, listening
NUMBERS = {"backend": "12345", "static": "12399"}


@dataclass
class Step:
    mode: str
    concurrent: int
    calls: int = 0
    sipp_failed: int = 0
    handed_on: int = 0
    journal_other: Counter[str] | None = None
    asterisk_cpu: float = 0.0
    backend_cpu: float = 0.0
    sipp_cpu: float = 0.0
    box_cpu: float = 0.0  # the whole machine, of 100% = every CPU busy
    lasted: str = ""

    @property
    def not_handed_on(self) -> int:
        return max(0, self.calls - self.sipp_failed - self.handed_on)

    @property
    def failures(self) -> int:
        return self.sipp_failed + self.not_handed_on


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def box_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, all CPUs: PostgreSQL, Redis, the kernel."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def write_scenario(lab: Lab, prefix: str) -> str:
    """One scenario for every caller: key 1; caller numbers are prefix + SIPp's call number."""
    workdir = lab.root / f"{lab.home_in_root.lstrip('/')}/sipp"
    workdir.mkdir(parents=True, exist_ok=True)
    (pcap,) = key_files(lab.root / PCAP_DIR.lstrip("/"), "1", workdir, "load")
    plan = CallPlan(caller=prefix, dtmf="1", hold_ms=HOLD_MS)
    text = scenario(plan, [f"{lab.home_in_root}/sipp/{pcap.name}"])
    text = text.replace(f"sip:{prefix}@", f"sip:{prefix}[call_number]@")
    (workdir / "load.xml").write_text(text)
    return f"{lab.home_in_root}/sipp"


def run_sipp(lab: Lab, folder: str, step: Step, seconds: float) -> None:
    rate = step.concurrent / CALL_SECONDS
    total = max(step.concurrent, int(rate * seconds))
    stats = f"{step.mode}-{step.concurrent}.csv"
    cmd = [
        "chroot",
        str(lab.root),
        "/usr/bin/env",
        "-C",
        folder,
        "sipp",
        f"127.0.0.1:{lab.lab.sip_port}",
        "-sf",
        "load.xml",
        "-s",
        NUMBERS[step.mode],
        "-i",
        "127.0.0.1",
        "-p",
        str(free_udp_port()),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_udp_port()),
        "-l",
        str(step.concurrent),
        "-r",
        f"{rate:.2f}",
        "-m",
        str(total),
        "-nostdin",
        "-timeout",
        f"{int(seconds * 3) + 60}s",
        "-trace_stat",
        "-stf",
        stats,
        "-fd",
        "1",
        "-default_behaviors",
        "all,-bye",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    step.sipp_cpu = used / (time.monotonic() - started)
    with open(lab.root / folder.lstrip("/") / stats) as fh:
        last = list(csv.DictReader(fh, delimiter=";"))[-1]
    step.calls = int(last["SuccessfulCall(C)"]) + int(last["FailedCall(C)"])
    step.sipp_failed = int(last["FailedCall(C)"])


async def journal(url: str, prefix: str) -> tuple[Counter[str], str]:
    """The backend's journal rows of a step, by route and outcome, and how long they lasted."""
    engine = create_async_engine(url)
    query = sa.text(
        "SELECT route, outcome, digits, steps,"
        " EXTRACT(EPOCH FROM ended_at - started_at) AS seconds"
        " FROM ivr_calls WHERE caller LIKE :p"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query, {"p": prefix + "%"})).all()
    await engine.dispose()
    counts = Counter(
        f"{r.route} ({r.outcome})" if r.route else f"{r.outcome}, keys {r.digits!r}: {r.steps}"
        for r in rows
    )
    lasted = sorted(float(r.seconds) for r in rows if r.seconds is not None)
    summary = (
        f"AGI sessions lasted p50 {lasted[len(lasted) // 2]:.1f} s, "
        f"p95 {lasted[int(len(lasted) * 0.95)]:.1f} s, max {lasted[-1]:.1f} s"
        if lasted
        else "no AGI sessions"
    )
    return counts, summary


async def run_step(
    lab: Lab, step: Step, seconds: float, asterisk: int, backend: int, database: str
) -> None:
    prefix = f"13{list(NUMBERS).index(step.mode)}{step.concurrent:05d}"
    folder = write_scenario(lab, prefix)
    creds = lab.credentials()
    async with AMIListener(
        "127.0.0.1", lab.lab.ami_port, creds.ami_user, creds.ami_password, events="user"
    ) as ami:
        a0, b0, t0 = cpu_seconds(asterisk), cpu_seconds(backend), time.monotonic()
        busy0, total0 = box_busy()
        await asyncio.to_thread(run_sipp, lab, folder, step, seconds)
        elapsed = time.monotonic() - t0
        busy1, total1 = box_busy()
        step.box_cpu = (busy1 - busy0) / max(1, total1 - total0)
        step.asterisk_cpu = (cpu_seconds(asterisk) - a0) / elapsed
        step.backend_cpu = (cpu_seconds(backend) - b0) / elapsed
        await asyncio.sleep(2)  # the last journal rows and events
        step.handed_on = sum(
            1
            for e in ami.events
            if e.get("UserEvent") == "HotlineHandoff"
            and e.get("Route") == "queue"
            and e.get("Type") == "consultation"
            and e.get("CallerIDNum", "").startswith(prefix)
        )
    if step.mode == "backend":
        routes, step.lasted = await journal(database, prefix)
        handed = [k for k in routes if k.startswith("queue:consultation (")]
        good = sum(routes.pop(k) for k in handed)
        step.handed_on = min(step.handed_on, good)
        step.journal_other = routes


def line(step: Step) -> str:
    return (
        f"{step.concurrent:>8} {step.mode:>8} {step.calls:>6} {step.sipp_failed:>9} "
        f"{step.not_handed_on:>10} {step.asterisk_cpu:>12.0%} {step.backend_cpu:>11.0%} "
        f"{step.sipp_cpu:>8.0%} {step.box_cpu:>8.0%}"
    )


def report(step: Step) -> None:
    print(line(step), flush=True)
    if step.lasted:
        print(f"{'':>8} {step.lasted}", flush=True)
    if step.journal_other:
        print(f"{'':>8} not handed on: {dict(step.journal_other)}", flush=True)


async def ladder(
    lab: Lab, args: argparse.Namespace, steps: list[Step], asterisk: int, backend: int, url: str
) -> None:
    """Each step in each mode; a mode that failed is not offered more callers."""
    failed: set[str] = set()
    for n in args.steps:
        for mode in args.modes:
            if mode in failed:
                continue
            step = Step(mode, n)
            await run_step(lab, step, args.seconds, asterisk, backend, url)
            report(step)
            steps.append(step)
            if step.failures:
                failed.add(mode)
        ours, base = (
            next((s for s in steps if s.concurrent == n and s.mode == m), None) for m in NUMBERS
        )
        if ours and base and base.asterisk_cpu:
            print(
                f"{'':>8} Asterisk CPU with the backend / static menu: "
                f"{ours.asterisk_cpu / base.asterisk_cpu:.2f}",
                flush=True,
            )
        if len(failed) == len(args.modes):
            break


def modes(text: str) -> list[str]:
    chosen = [m for m in text.split(",") if m]
    unknown = [m for m in chosen if m not in NUMBERS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(NUMBERS)}")
    return chosen


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps", type=lambda t: [int(x) for x in t.split(",")], default="200,400,500,600,800,1000"
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--backend-nice",
        type=int,
        default=0,
        help="run the backend at this nice value (e.g. -5: ahead of Asterisk's media threads)",
    )
    parser.add_argument("--modes", type=modes, default=",".join(NUMBERS), help="backend,static")
    args = parser.parse_args()
    env = dict(BENCH_ENV)
    hotline("lab", "down", env=env)  # a leftover from an interrupted run
    up = hotline("lab", "up", env=env, timeout=600)
    if up.returncode != 0:
        print(up.stdout, up.stderr, file=sys.stderr)
        return 1
    lab = Lab(load_settings(env={**os.environ, **env}))
    steps: list[Step] = []
    async with fresh_database() as url:
        backend = Backend(
            {
                **env,
                "HOTLINE_DATABASE_URL": url,
                "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
                "HOTLINE_SERVER_AGI_SECRET": lab.credentials().agi_secret,
            }
        ).start()
        try:
            out = hotline("users", "add", "--name", "load", "--role", "agent", env=backend.env)
            token = out.stdout.strip().splitlines()[-1]
            request = urllib.request.Request(  # an agent on duty: callers go to the queue
                backend.url + "/api/v1/agents/me/login",
                method="POST",
                data=json.dumps({"extension": "8001"}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=5).read()
            asterisk_pid = lab.status().pid
            assert asterisk_pid and backend.proc
            if args.backend_nice:
                os.setpriority(os.PRIO_PROCESS, backend.proc.pid, args.backend_nice)
            print(
                f"IVR load: {os.cpu_count()} CPUs; each caller presses 1 during the welcome and "
                f"is handed to the queue; {args.seconds:.0f} s per step; 'static' is the "
                "baseline: the same menu in dialplan alone (no backend)"
                + (f"; backend at nice {args.backend_nice}" if args.backend_nice else "")
            )
            print(
                f"{'callers':>8} {'IVR':>8} {'calls':>6} {'sipp fail':>9} {'not handed':>10} "
                f"{'Asterisk CPU':>12} {'backend CPU':>11} {'SIPp CPU':>8} {'box busy':>8}"
            )
            await ladder(lab, args, steps, asterisk_pid, backend.proc.pid, url)
        finally:
            backend.stop()
            hotline("lab", "down", env=env)
    for mode in args.modes:
        good = [s.concurrent for s in steps if s.mode == mode and not s.failures]
        bad = [s.concurrent for s in steps if s.mode == mode and s.failures]
        print(
            f"knee ({mode}): {good[-1] if good else 0} concurrent callers with zero failed calls"
            + (f"; calls fail at {bad[0]}" if bad else " (no step failed)")
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
