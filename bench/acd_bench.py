"""ACD benchmarks (issue 10), in one run: how fast a caller who enters the queue rings an agent's
phone, against Asterisk's own app_queue; and how many dispatch decisions the Redis store makes.

**Latency** (needs root: the lab instance ``bench`` on ports of its own). ``--agents`` SIPp agent
phones (``PJSIP/7001`` …, one SIPp answering them all at once) and callers entering at
``--rate`` per second for ``--seconds``, each a Local channel that talks ``TALK_SECONDS`` and
hangs up. The same load goes twice through the same Asterisk: first into app_queue (one static
queue of those phones, ``leastrecent``, the same wrap-up), then into the dialplan's queue
contract (``hotline-queue``) and the backend's ACD — ``hotline serve`` with the Redis store, the
agents logged in over the agent API. The dialplan stamps the moment each caller enters the
queue in Asterisk's log (``STRFTIME`` to the microsecond); the phone's SIPp stamps the INVITE
that reaches it, found by the caller's number in its From header. Latency = INVITE - entry.

**Store**: dispatch decisions per second at 2,000 agents talking and 2,000 calls waiting, the
Redis store against the in-process one. A decision is one agent's call ending and the next
waiting call offered to it, as the queue service runs it (``ended`` + ``dispatch`` in one store
step), followed by that offer's answer (a second step): the two changes every answered call
costs. The Redis store moves the state each step (``hotline/queue/store.py``); the memory store
does the same model work without that: the ratio is the price of sharing the queue.

    sudo .venv/bin/python bench/acd_bench.py [latency|store|all] [--agents 500] [--rate 20]
        [--seconds 30] [--store-agents 2000] [--waiting 2000] [--decisions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline.agi.ari import AriClient  # noqa: E402
from hotline.config.settings import load_settings  # noqa: E402
from hotline.lab.instance import Lab  # noqa: E402
from hotline.lab.root import require_root_user  # noqa: E402
from hotline.lab.sipp import free_udp_port  # noqa: E402
from hotline.queue.acd import Acd, AcdConfig, OfferDecision, Outcome  # noqa: E402
from hotline.queue.agent import Login  # noqa: E402
from hotline.queue.service import merge  # noqa: E402
from hotline.queue.store import MemoryQueueStore, QueueStore, RedisQueueStore  # noqa: E402
from hotline.ticketing.model import Role  # noqa: E402
from hotline.ticketing.users import add_user  # noqa: E402
from tests.backend import Backend, free_port  # noqa: E402
from tests.conftest import fresh_database  # noqa: E402

REDIS = os.environ.get("HOTLINE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CONFIG = AcdConfig(wrap_up_seconds=0, ring_timeout=10**6)


def busy_queue(acd: Acd, agents: int, waiting: int) -> Outcome:
    """Every agent talking, ``waiting`` calls in line behind them (and what that touched)."""
    done = [acd.command(f"a{n:05}", Login(f"{10000 + n}"), 0.0) for n in range(agents)]
    done += [acd.enter(f"c{n:06}", 1.0 + n / 1000) for n in range(agents + waiting)]
    offers = acd.dispatch(10.0)
    done += [offers]
    done += [acd.answered(o.call_id, o.agent_id, 11.0) for o in offers.offers]
    return merge(*done)


async def run(store: QueueStore, agents: int, decisions: int) -> tuple[float, list[float]]:
    def connected(acd: Acd, now: float) -> list[tuple[str, str]]:
        return [(c.call_id, c.agent_id) for c in acd.connected.values()]

    talking = sorted(await store.read(connected, 0))
    steps: list[float] = []
    now = 100.0
    start = time.perf_counter()
    for i in range(decisions):
        call_id, _ = talking[i % len(talking)]
        now += 1
        t = time.perf_counter()

        def end_and_offer(acd: Acd, at: float, call_id: str = call_id) -> Outcome:
            return merge(acd.ended(call_id, at, by="caller"), acd.dispatch(at))

        out = await store.apply(end_and_offer, now)
        steps.append(time.perf_counter() - t)
        (offer,) = out.offers

        def answer(acd: Acd, at: float, o: OfferDecision = offer) -> Outcome:
            return acd.answered(o.call_id, o.agent_id, at)

        await store.apply(answer, now + 0.5)
        talking[i % len(talking)] = (offer.call_id, offer.agent_id)
    return decisions / (time.perf_counter() - start), steps


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


async def store(args: argparse.Namespace) -> None:

    memory = MemoryQueueStore(CONFIG)
    busy_queue(memory.acd, args.store_agents, args.waiting)
    redis = Redis.from_url(REDIS)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    shared = RedisQueueStore(redis, prefix, CONFIG)
    await shared.apply(lambda acd, now: busy_queue(acd, args.store_agents, args.waiting), 0)
    size = sum([await redis.memory_usage(k) or 0 for k in shared.keys[1:]])
    try:
        base, base_steps = await run(memory, args.store_agents, args.decisions)
        rate, steps = await run(shared, args.store_agents, args.decisions)
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    print(
        f"ACD store: {args.store_agents} agents talking, {args.waiting} calls waiting, "
        f"{args.decisions} decisions (call ends -> next call offered -> answered)"
    )
    print(f"  state in Redis: {size / 1024:.0f} KiB in {len(shared.keys) - 1} hashes")
    for name, r, s in (("memory (baseline)", base, base_steps), ("Redis", rate, steps)):
        print(
            f"  {name:18} {r:8.1f} decisions/s   end+dispatch step p50 {ms(s, 50):7.2f} ms "
            f"p95 {ms(s, 95):7.2f} ms p99 {ms(s, 99):7.2f} ms"
        )
    print(f"  Redis / memory: {rate / base:.3f}x  (full loads: {shared.reloads})")


# -- enter-queue -> agent-rung latency, in the lab ------------------------------------------------

BENCH_ENV = {  # the lab instance "bench" (bench/ivr_load.py uses it too; not at the same time)
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
APP_QUEUE = "hotline-bench"  # the static app_queue queue of the same agents
FIRST_EXTENSION = 7001  # the bench's agent phones: 7001…, beside the lab's 8001–8099
TALK_SECONDS = 3  # a bench caller hangs up this long after entering (its agent answers at once)
WRAP_UP_SECONDS = 10  # the ACD's default; app_queue's wrapuptime is set the same
ENTER = re.compile(r"hotline-bench enter (\d+) (\d+\.\d+)")
RUNG = re.compile(r"^rung \S+\s+\S+\s+(\d+\.\d+) (\d+)", re.M)  # SIPp: date, time, epoch

AGENTS_UAS = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="hotline bench agent phones">
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="From:" assign_to="number"/>
      <log message="rung [timestamp] [$number]"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=agent 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=sendrecv
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


def lab_config(extensions: list[str], uas_port: int) -> dict[str, str]:
    """The bench's additions to the lab: agent phones with a fixed contact (one SIPp answers
    them all), the app_queue queue of the same phones, and the two ways in. Both ways stamp the
    moment the caller enters the queue in Asterisk's log, right before ``Queue()`` or the
    dialplan's queue contract (``hotline-queue``: ``StasisBroadcast`` to the backend)."""
    pjsip = "".join(
        f"[{ext}](lab-endpoint)\ncontext = hotline-agents\naors = {ext}\n\n"
        f"[{ext}]\ntype = aor\ncontact = sip:{ext}@127.0.0.1:{uas_port}\n\n"
        for ext in extensions
    )
    queue = "\n".join(
        [
            f"[{APP_QUEUE}]",
            "strategy = leastrecent",  # the ACD's longest-idle agent first
            "timeout = 15",  # the ACD's ring_timeout
            "retry = 1",
            f"wrapuptime = {WRAP_UP_SECONDS}",
            "ringinuse = no",
            "autofill = yes",
            "joinempty = yes",
            "leavewhenempty = no",
            "announce-frequency = 0",
            "periodic-announce-frequency = 0",
            "announce-position = no",
            "musicclass = default",
            *(f"member => PJSIP/{ext}" for ext in extensions),
            "",
        ]
    )
    stamp = "Log(NOTICE,hotline-bench enter ${EXTEN} ${STRFTIME(,,%s.%6q)})"
    dialplan = f"""
[hotline-bench-acd]
exten => _X.,1,Answer()
 same => n,Set(CALLERID(num)=${{EXTEN}})
 same => n,{stamp}
 same => n,Goto(hotline-queue,s,1)

[hotline-bench-app-queue]
exten => _X.,1,Answer()
 same => n,Set(CALLERID(num)=${{EXTEN}})
 same => n,{stamp}
 same => n,Queue({APP_QUEUE},,,,120)
 same => n,Hangup()

[hotline-bench-caller]
exten => s,1,Wait({TALK_SECONDS})
 same => n,Hangup()
"""
    # the lab's Asterisk sends silence to channels that hear nothing (transmit_silence): to
    # the two halves of a Local channel that costs as much CPU as a whole call; off for both
    options = "[options](+)\ntransmit_silence = no\n"
    return {
        "pjsip.conf": pjsip,
        "queues.conf": queue,
        "extensions.conf": dialplan,
        "asterisk.conf": options,
    }


@dataclass
class Run:
    name: str
    offered: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, enter -> INVITE at the phone
    not_entered: int = 0
    not_rung: int = 0
    asterisk_cpu: float = 0.0
    backend_cpu: float = 0.0

    def line(self) -> str:
        if not self.latencies:
            return f"  {self.name:22} no call rang ({self.offered} offered)"
        q = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return (
            f"  {self.name:22} p50 {q[49] * 1000:7.2f} ms  p95 {q[94] * 1000:7.2f} ms  "
            f"p99 {q[98] * 1000:7.2f} ms  max {max(self.latencies) * 1000:7.2f} ms   "
            f"rung {len(self.latencies)}/{self.offered}  Asterisk CPU {self.asterisk_cpu:4.0%}"
            + (f"  backend CPU {self.backend_cpu:4.0%}" if self.backend_cpu else "")
        )


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rung_at(log: str) -> dict[str, float]:
    """The first INVITE each caller's number rang an agent phone with."""
    first: dict[str, float] = {}
    for when, number in RUNG.findall(log):
        first.setdefault(number, float(when))
    return first


async def offer_calls(
    ari: AriClient, context: str, prefix: str, rate: float, seconds: float
) -> list[str]:
    """Callers entering ``context`` at ``rate`` per second, each a Local channel whose other
    half waits ``TALK_SECONDS`` and hangs up."""
    loop = asyncio.get_running_loop()
    numbers = [f"{prefix}{n:06d}" for n in range(int(rate * seconds))]
    start = loop.time()
    placed = []
    for n, number in enumerate(numbers):
        await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
        placed.append(
            asyncio.create_task(
                ari.post(
                    "/channels",
                    endpoint=f"Local/{number}@{context}/n",
                    context="hotline-bench-caller",
                    extension="s",
                    priority=1,
                    callerId=number,
                    timeout=30,
                )
            )
        )
    failed = [
        r
        for r in await asyncio.gather(*placed, return_exceptions=True)
        if isinstance(r, BaseException)
    ]
    if failed:
        print(f"  {len(failed)} originates failed, e.g. {failed[0]}", file=sys.stderr)
    return numbers


async def measure(
    lab: Lab,
    ari: AriClient,
    uas_log: Path,
    run: Run,
    context: str,
    prefix: str,
    rate: float,
    seconds: float,
    backend_pid: int | None,
) -> None:
    asterisk_pid = lab.status().pid
    assert asterisk_pid is not None
    log_from = lab.log_file.stat().st_size
    a0, b0, t0 = (
        cpu_seconds(asterisk_pid),
        cpu_seconds(backend_pid) if backend_pid else 0.0,
        time.monotonic(),
    )
    numbers = await offer_calls(ari, context, prefix, rate, seconds)
    elapsed = time.monotonic() - t0
    run.asterisk_cpu = (cpu_seconds(asterisk_pid) - a0) / elapsed
    if backend_pid:
        run.backend_cpu = (cpu_seconds(backend_pid) - b0) / elapsed
    await asyncio.sleep(TALK_SECONDS + 3)  # the last calls ring, answer and end
    with open(lab.log_file, encoding="utf-8", errors="replace") as fh:
        fh.seek(log_from)
        entered = {n: float(t) for n, t in ENTER.findall(fh.read())}
    rung = rung_at(uas_log.read_text(errors="replace"))
    run.offered = len(numbers)
    for number in numbers:
        if number not in entered:
            run.not_entered += 1
        elif number not in rung:
            run.not_rung += 1
        else:
            run.latencies.append(rung[number] - entered[number])
    if any(v < 0 for v in run.latencies):
        raise SystemExit("a phone rang before its caller entered: the clocks disagree")


async def wait_for_app(ari: AriClient, family: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = await ari.get("/applications")
        if any(str(a.get("name", "")).startswith(family) for a in apps):
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"the backend's Stasis application ({family}*) did not appear")


async def agents_on_duty(url: str, database: str, extensions: list[str]) -> None:
    """One agent user per phone, logged in (ready) over the agent API."""
    engine = create_async_engine(database)
    try:
        tokens = [(await add_user(engine, f"坐席{ext}", Role.AGENT))[1] for ext in extensions]
    finally:
        await engine.dispose()
    gate = asyncio.Semaphore(20)
    async with aiohttp.ClientSession(url) as http:

        async def login(token: str, ext: str) -> None:
            async with (
                gate,
                http.post(
                    "/api/v1/agents/me/login",
                    json={"extension": ext},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp,
            ):
                body = await resp.json()
                if resp.status != 200 or body.get("state") != "ready":
                    raise SystemExit(f"agent {ext} not on duty: {resp.status} {body}")

        await asyncio.gather(*(login(t, e) for t, e in zip(tokens, extensions, strict=True)))


async def latency(args: argparse.Namespace) -> None:
    require_root_user()
    settings = load_settings(env={**os.environ, **BENCH_ENV})
    lab = Lab(settings)
    extensions = [str(FIRST_EXTENSION + n) for n in range(args.agents)]
    uas_port = free_udp_port()
    lab.down()  # a leftover from an interrupted run
    lab.up(extra=lab_config(extensions, uas_port))
    workdir = lab.home / "sipp"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bench-agents.xml").write_text(AGENTS_UAS)
    uas_log = workdir / "bench-agents.log"
    uas_log.unlink(missing_ok=True)
    uas = await asyncio.create_subprocess_exec(
        "chroot",
        str(lab.root),
        "/usr/bin/env",
        "-C",
        f"{lab.home_in_root}/sipp",
        "sipp",
        "-sf",
        "bench-agents.xml",
        "-i",
        "127.0.0.1",
        "-p",
        str(uas_port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_udp_port()),
        "-nostdin",
        "-trace_logs",
        "-log_file",
        "bench-agents.log",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)
    if uas.returncode is not None:
        raise SystemExit(f"the agents' SIPp did not start (exit {uas.returncode})")
    creds = lab.credentials()
    runs = [Run("Asterisk app_queue"), Run("hotline ACD (Redis)")]
    try:
        async with AriClient(lab.ari_url, creds.ari_user, creds.ari_password) as ari:
            await measure(
                lab,
                ari,
                uas_log,
                runs[0],
                "hotline-bench-app-queue",
                "138",
                args.rate,
                args.seconds,
                None,
            )
            async with fresh_database() as database:
                backend = Backend(
                    {
                        **BENCH_ENV,
                        "HOTLINE_DATABASE_URL": database,
                        "HOTLINE_SERVER_HTTP_PORT": str(free_port()),
                        "HOTLINE_SERVER_AGI_SECRET": creds.agi_secret,
                        "HOTLINE_ARI_URL": lab.ari_url,
                        "HOTLINE_ARI_USER": creds.ari_user,
                        "HOTLINE_ARI_PASSWORD": creds.ari_password,
                        "HOTLINE_REDIS_URL": REDIS,
                        "HOTLINE_REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:",
                        "HOTLINE_QUEUE_STORE": "redis",
                        "HOTLINE_QUEUE_WRAP_UP_SECONDS": str(WRAP_UP_SECONDS),
                        "HOTLINE_SERVER_SPOOL_DIR": str(lab.home / "bench-spool"),
                        "HOTLINE_ARI_RECORDINGS_DIR": str(lab.home / "bench-recordings"),
                    }
                ).start()
                try:
                    await wait_for_app(ari, f"{settings.ari.app}-")
                    await agents_on_duty(backend.url, database, extensions)
                    assert backend.proc is not None
                    await measure(
                        lab,
                        ari,
                        uas_log,
                        runs[1],
                        "hotline-bench-acd",
                        "139",
                        args.rate,
                        args.seconds,
                        backend.proc.pid,
                    )
                finally:
                    out = backend.stop()
                    if args.backend_log:
                        Path(args.backend_log).write_text(out)
                    errors = [ln for ln in out.splitlines() if " ERROR " in ln]
                    if errors:
                        print(
                            f"  backend errors ({len(errors)}), e.g. {errors[0]}", file=sys.stderr
                        )
    finally:
        if uas.returncode is None:
            uas.terminate()
        await uas.wait()
        lab.down()
    print(
        f"enter-queue -> agent phone rung (INVITE at the phone): {args.agents} agents, "
        f"{args.rate:g} calls/s for {args.seconds:g} s, each answered at once, "
        f"{TALK_SECONDS} s talk, {WRAP_UP_SECONDS} s wrap-up"
    )
    for run in runs:
        print(run.line())
        if run.not_entered or run.not_rung:
            print(f"  {'':22} not entered {run.not_entered}, entered but not rung {run.not_rung}")
    base, ours = runs
    if base.latencies and ours.latencies:
        b = statistics.quantiles(base.latencies, n=100, method="inclusive")
        o = statistics.quantiles(ours.latencies, n=100, method="inclusive")
        print(
            f"  ACD / app_queue: p50 {o[49] / b[49]:.2f}x  p95 {o[94] / b[94]:.2f}x  "
            f"p99 {o[98] / b[98]:.2f}x"
        )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", nargs="?", choices=("latency", "store", "all"), default="all")
    p.add_argument("--agents", type=int, default=500, help="latency: agent phones")
    p.add_argument("--rate", type=float, default=20.0, help="latency: callers per second")
    p.add_argument("--seconds", type=float, default=30.0, help="latency: how long callers come")
    p.add_argument("--backend-log", help="latency: write the backend's log to this file")
    p.add_argument("--store-agents", type=int, default=2000, help="store: agents talking")
    p.add_argument("--waiting", type=int, default=2000, help="store: calls waiting")
    p.add_argument("--decisions", type=int, default=200, help="store: decisions made")
    args = p.parse_args()
    if args.what in ("latency", "all"):
        await latency(args)
    if args.what in ("store", "all"):
        await store(args)


if __name__ == "__main__":
    asyncio.run(main())
