"""FastAGI benchmark: sessions/s and commands/s on the same script against three servers.

A load generator speaks AGI the way Asterisk does — connect, send the environment block,
answer each command with the reply Asterisk would give — with a fixed number of concurrent
callers, for a fixed time, against:

  (a) hotline's FastAGIServer (sans-I/O core + AGIChannel), the script written with its API;
  (b) panoramisk's FastAGI ``Application`` (the usual asyncio choice), the same script;
  (c) a raw asyncio loop that writes the same command bytes and reads a line back without
      parsing anything: the ceiling for this machine, loop and generator.

Each server runs in a process of its own; the generator runs in this one. All three are
measured in one run and printed with their ratios. Logging is at WARNING in every server.

    .venv/bin/python bench/fastagi_bench.py [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

SCRIPT = [
    b"ANSWER",
    b'STREAM FILE hotline/welcome "01234"',
    b'STREAM FILE hotline/emergency_notice "01234"',
    b"GET DATA hotline/menu 5000 1",
    b"SET VARIABLE HOTLINE_ROUTE consultation",
    b'VERBOSE "routed to consultation" 1',
]
REPLIES = {
    b"ANSWER": b"200 result=0\n",
    b"STREAM": b"200 result=0 endpos=48000\n",
    b"GET": b"200 result=1\n",
    b"SET": b"200 result=1\n",
    b"VERBOSE": b"200 result=1\n",
}
ENV = (
    b"agi_network: yes\nagi_network_script: ivr\nagi_request: agi://127.0.0.1/ivr\n"
    b"agi_channel: PJSIP/citizen-trunk-00000001\nagi_language: zh\nagi_type: PJSIP\n"
    b"agi_uniqueid: 1700000000.1\nagi_version: 22.10.1\nagi_callerid: 13800138000\n"
    b"agi_calleridname: citizen\nagi_callingpres: 0\nagi_callingani2: 0\n"
    b"agi_callington: 0\nagi_callingtns: 0\nagi_dnid: 12345\nagi_rdnis: unknown\n"
    b"agi_context: citizen-inbound\nagi_extension: 12345\nagi_priority: 5\n"
    b"agi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 140018236458688\n\n"
)
SECRET = "bench-secret-0123456789"  # hotline checks the dialplan's secret (the others cannot)
ENVS = {
    "hotline": ENV.replace(b"script: ivr", f"script: ivr?secret={SECRET}".encode()),
    "panoramisk": ENV,
    "raw asyncio": ENV,
}


# -- the three servers -------------------------------------------------------------------------
async def _hotline(port: int, ready: Any) -> None:
    from hotline.agi.fastagi import AGISession, FastAGIServer, Router

    async def ivr(session: AGISession) -> None:
        ch = session.channel
        await ch.answer()
        await ch.stream_file("hotline/welcome", "01234")
        await ch.stream_file("hotline/emergency_notice", "01234")
        await ch.get_data("hotline/menu", 5000, 1)
        await ch.set_variable("HOTLINE_ROUTE", "consultation")
        await ch.verbose("routed to consultation", 1)

    router = Router()
    router.add("ivr", ivr)
    server = FastAGIServer(
        router, host="127.0.0.1", port=port, max_connections=10_000, secret=SECRET
    )
    await server.start()
    ready.set()
    await asyncio.Event().wait()


async def _panoramisk(port: int, ready: Any) -> None:
    from panoramisk.fast_agi import Application

    async def ivr(request: object) -> None:
        send = request.send_command  # type: ignore[attr-defined]
        await send("ANSWER")
        await send('STREAM FILE hotline/welcome "01234"')
        await send('STREAM FILE hotline/emergency_notice "01234"')
        await send("GET DATA hotline/menu 5000 1")
        await send("SET VARIABLE HOTLINE_ROUTE consultation")
        await send('VERBOSE "routed to consultation" 1')

    app = Application()
    app.add_route("ivr", ivr)
    await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=1024)
    ready.set()
    await asyncio.Event().wait()


async def _raw(port: int, ready: Any) -> None:
    commands = [c + b"\n" for c in SCRIPT]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\n\n")
        for command in commands:
            writer.write(command)
            await reader.readline()
        writer.close()

    await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    ready.set()
    await asyncio.Event().wait()


SERVERS = {"hotline": _hotline, "panoramisk": _panoramisk, "raw asyncio": _raw}


def _serve(name: str, port: int, ready: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(SERVERS[name](port, ready))


# -- the load generator ------------------------------------------------------------------------
@dataclass
class Result:
    sessions: int = 0
    commands: int = 0
    errors: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0  # CPU seconds the server process used during the run


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def _caller(port: int, until: float, result: Result, env: bytes) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            result.errors += 1
            await asyncio.sleep(0.01)
            continue
        writer.write(env)
        count = 0
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(REPLIES.get(line.split(b" ", 1)[0].rstrip(), b"510 Invalid\n"))
            count += 1
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        if count == len(SCRIPT):
            result.sessions += 1
        else:
            result.errors += 1
        result.commands += count


async def _load(port: int, seconds: float, concurrency: int, env: bytes) -> Result:
    result = Result()
    start = time.monotonic()
    callers = (_caller(port, start + seconds, result, env) for _ in range(concurrency))
    await asyncio.gather(*callers)
    result.seconds = time.monotonic() - start
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(name: str, seconds: float, concurrency: int) -> Result:
    # Readiness comes through an Event, not a probe connection: a connection closed before the
    # environment block sends panoramisk 1.4's handler into a busy loop (reads b"" forever).
    port = _free_port()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_serve, args=(name, port, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            raise RuntimeError(f"{name} did not start")
        asyncio.run(_load(port, 0.5, concurrency, ENVS[name]))  # warm-up
        assert proc.pid is not None
        cpu = _cpu_seconds(proc.pid)
        result = asyncio.run(_load(port, seconds, concurrency, ENVS[name]))
        result.server_cpu = _cpu_seconds(proc.pid) - cpu
        return result
    finally:
        proc.terminate()
        proc.join(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(
        f"FastAGI benchmark: {len(SCRIPT)} commands per session, {args.concurrency} concurrent "
        f"callers, {args.seconds:.0f} s per server, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}"
    )
    results = {name: measure(name, args.seconds, args.concurrency) for name in SERVERS}
    limit = results["raw asyncio"]
    print(
        f"{'server':<12} {'sessions/s':>11} {'commands/s':>11} {'errors':>7} {'vs raw':>7} "
        f"{'server CPU':>10} {'sessions/CPU-s':>15}"
    )
    for name, r in results.items():
        sps, cps = r.sessions / r.seconds, r.commands / r.seconds
        ratio = sps / (limit.sessions / limit.seconds)
        print(
            f"{name:<12} {sps:>11.0f} {cps:>11.0f} {r.errors:>7d} {ratio:>7.2f} "
            f"{r.server_cpu / r.seconds:>9.0%} {r.sessions / r.server_cpu:>15.0f}"
        )
    ours, theirs = results["hotline"], results["panoramisk"]
    print(
        f"hotline / panoramisk: sessions/s "
        f"{(ours.sessions / ours.seconds) / (theirs.sessions / theirs.seconds):.2f}, "
        f"sessions per server CPU-second "
        f"{(ours.sessions / ours.server_cpu) / (theirs.sessions / theirs.server_cpu):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
