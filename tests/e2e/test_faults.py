"""Issue 9, "nothing lost, no dead air": real calls in the lab while the parts behind fail.

Each test starts the faults it needs on servers of its own (tests/faults.py): a PostgreSQL
cluster for the session (a fresh database per test) and, where shared state matters, a Redis;
the machine's own PostgreSQL and Redis are never touched. The backend is ``hotline serve`` in a
process, wired to the lab as in tests/e2e/conftest.py, and sweeps the switch every 3 s.

Silence is measured on the Asterisk side: the gaps between the AGI commands Asterisk ran for
the call (AMI ``AGIExecStart`` / ``AGIExecEnd``, stamped on arrival; see
:meth:`tests.faults.Timeline.agi_gaps`). Blocking work runs in threads while calls are up, so
the stamps stay honest.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.lab.calls import ObservedCall, observe_call
from hotline.lab.instance import Lab
from hotline.lab.sipp import CallPlan
from tests.e2e.conftest import LabBackend
from tests.e2e.test_ivr import caller, message_audio
from tests.faults import (
    PgInstance,
    RedisInstance,
    StampedCall,
    Step,
    Timeline,
    apoll,
    http,
    observe_steps,
    poll,
)

pytestmark = pytest.mark.e2e

BACKEND_TIMEOUT = 2.0  # HOTLINE_IVR_BACKEND_TIMEOUT: the most silence a caller may hear
SILENCE_SLACK = 1.0  # scheduling on two cores, AMI delivery: not the backend's to spend
FAULT_SETTINGS = {
    "HOTLINE_ARI_SWEEP_INTERVAL": "3",
    "HOTLINE_IVR_BACKEND_TIMEOUT": str(BACKEND_TIMEOUT),
    "HOTLINE_DATABASE_TIMEOUT": "2",
}
# Key 7: a voice message. The key cuts the welcome short, the notice (I-6, 7.8 s) and the
# voice-message prompt play, then 7 s of speech just after the beep. Speech plays while the
# next step runs: a plan's hold_ms counts from its start (10 s: the speech, then 3 s).
MESSAGE: list[Step] = [("keys", "7"), ("wait", 17300), ("speak", None)]
SPEECH_THEN_HANG_UP = 10000
# ... and # once the speech is over: the recording ends, the caller stays for the closing words.
MESSAGE_ENDED_WITH_HASH: list[Step] = [*MESSAGE, ("wait", 7500), ("keys", "#")]
# A message whichever way the call goes: the backend records at the beep as above; or the
# dialplan's safe path (fallback prompt 5.7 s, the operator rings 20 s, the voice-message
# prompt 8.9 s) records from about 35 s, when the caller speaks again.
MESSAGE_EITHER_WAY: list[Step] = [*MESSAGE, ("wait", 17000), ("speak", None)]


class FaultBackend(LabBackend):
    def supervisor(self) -> str:
        return self.user("班长", "supervisor")

    def tickets_of(self, token: str, phone: str) -> list[dict[str, Any]]:
        found = self.api(token, "GET", f"/api/v1/tickets?phone={phone}&limit=50")["tickets"]
        return list(found)

    def voicemail_ticket(self, token: str, phone: str) -> dict[str, Any] | None:
        """The caller's ticket that has a ``voicemail_callback`` task (None: not yet)."""
        tasks = self.api(token, "GET", "/api/v1/tasks")["tasks"]
        for task in tasks:
            if task["kind"] != "voicemail_callback":
                continue
            ticket = self.api(token, "GET", f"/api/v1/tickets/{task['ticket']}")
            if ticket["citizen"]["phone"] == phone:
                return dict(ticket)
        return None

    def log_excerpt(self, *words: str, lines: int = 30) -> str:
        """The backend's log lines naming any of ``words`` (all of it when none), last first."""
        out = self.output().splitlines()
        picked = [line for line in out if not words or any(w in line for w in words)]
        return "\n".join(picked[-lines:])


@pytest.fixture(scope="session")
def pg() -> Iterator[PgInstance]:
    with PgInstance() as server:
        yield server


@pytest.fixture
def pg_db(pg: PgInstance) -> Iterator[str]:
    """A fresh database on the session's own PostgreSQL; the server is up again afterwards."""
    pg.thaw()
    pg.start()
    name = f"f_{uuid.uuid4().hex[:12]}"
    url = pg.create_database(name)
    yield url
    pg.thaw()
    pg.start()
    pg.drop_database(name)


@pytest.fixture
def redis_server() -> Iterator[RedisInstance]:
    with RedisInstance() as server:
        yield server


@pytest.fixture
def fault_backend(
    lab: Lab, lab_env: dict[str, str], pg_db: str, tmp_path: Path
) -> Iterator[Callable[..., FaultBackend]]:
    """``hotline serve`` against the lab and the test's own database; ``start=False`` gives the
    backend unstarted (its CLI works), ``upgrade=False`` starts it without migrating first."""
    made: list[FaultBackend] = []
    creds = lab.credentials()

    def make(start: bool = True, upgrade: bool = True, **extra: str) -> FaultBackend:
        env = {
            **lab_env,
            "HOTLINE_DATABASE_URL": pg_db,
            "HOTLINE_ARI_URL": lab.ari_url,
            "HOTLINE_ARI_USER": creds.ari_user,
            "HOTLINE_ARI_PASSWORD": creds.ari_password,
            "HOTLINE_SERVER_AGI_SECRET": creds.agi_secret,
            "HOTLINE_ARI_RECORDINGS_DIR": str(tmp_path / "recordings"),
            "HOTLINE_SERVER_SPOOL_DIR": str(tmp_path / "spool"),  # kept across a restart
            **FAULT_SETTINGS,
            **extra,
        }
        b = FaultBackend(env)
        made.append(b)
        if start:
            b.start(upgrade=upgrade)
        return b

    yield make
    for b in made:
        if b.proc is not None:
            b.stop()
        else:
            b.log.close()


def left_a_message(seen: ObservedCall) -> bool:
    """The caller was recorded: by the backend (RECORD FILE) or on the safe path."""
    return any(c.startswith("RECORD FILE") for c in seen.agi) or bool(
        seen.user_events("HotlineVoicemail")
    )


def longest_silence(timeline: Timeline) -> tuple[float, str]:
    """The longest gap between the call's AGI commands, and every gap over 0.3 s, said."""
    gaps = timeline.agi_gaps()
    assert gaps, "no AGI commands seen for the call"
    worst = max(gaps, key=lambda g: g.seconds)
    said = [f"{g.seconds:.2f}s {g.after[:40]!r} -> {g.before[:40]!r}" for g in gaps]
    long = [line for line, g in zip(said, gaps, strict=True) if g.seconds > 0.3]
    return worst.seconds, f"{len(gaps)} gaps, longest {worst.seconds:.2f}s; over 0.3 s: {long}"


# -- a: the backend killed while a caller records --------------------------------------------
async def test_a_message_recorded_while_the_backend_is_killed_becomes_one_ticket(
    lab: Lab, fault_backend: Callable[..., FaultBackend]
) -> None:
    b = fault_backend()
    token = b.supervisor()
    plan = CallPlan(caller=caller(), hold_ms=SPEECH_THEN_HANG_UP)
    async with StampedCall(lab, plan, steps=MESSAGE) as call:
        await call.wait_agi("RECORD FILE", timeout=40)
        await asyncio.sleep(3)  # mid-speech
        b.kill9()
        killed = time.monotonic()
        seen, _ = await call.done()
    assert seen.call.ok, seen.call.output
    print(f"backend killed {time.monotonic() - killed:.1f}s before the caller hung up")

    b.start()  # the same database, the same lab
    restarted = time.monotonic()
    ticket = await apoll(lambda: b.voicemail_ticket(token, plan.caller), timeout=30)
    print(f"ticket after {time.monotonic() - restarted:.1f}s from the restart")
    assert ticket, "no voice-message ticket 30 s after the restart:\n" + b.log_excerpt(
        "voice message", "recording", "sweep", "ERROR", "WARNING"
    )
    assert ticket["channel"] == "phone"
    (name,) = ticket["recordings"]
    _, seconds = await asyncio.to_thread(message_audio, b, token, ticket["number"], name)
    assert seconds > 6  # the caller's 7 s of speech: recorded by Asterisk all the same
    mine = b.tickets_of(token, plan.caller)
    assert len(mine) == 1, f"{len(mine)} tickets for one call: {[t['number'] for t in mine]}"
    # and the journal row of the call the killed process had up: stored, as interrupted
    call_id = str(ticket["upstream_id"]).removeprefix("voicemail:")

    def journal_row() -> dict[str, Any] | None:
        rows = b.api(token, "GET", "/api/v1/ivr/calls?limit=100")["calls"]
        return next((r for r in rows if r["call_id"] == call_id), None)

    row = await apoll(journal_row, timeout=40)
    assert row is not None, "the killed call's journal row was lost"
    assert row["outcome"] == "interrupted" and "voicemail" in row["steps"], row


# -- b: the database down for a minute while three callers leave messages ------------------
async def test_three_messages_left_while_the_database_is_down_become_three_tickets(
    lab: Lab, fault_backend: Callable[..., FaultBackend], pg: PgInstance
) -> None:
    b = fault_backend()
    token = b.supervisor()
    plans = [CallPlan(caller=caller(), hold_ms=SPEECH_THEN_HANG_UP) for _ in range(3)]
    pg.stop()
    stopped = time.monotonic()
    seen = await asyncio.gather(*(observe_steps(lab, p, MESSAGE_EITHER_WAY) for p in plans))
    for s in seen:
        assert s.call.ok, s.call.output
        assert left_a_message(s), s.summary()
    await asyncio.sleep(max(0.0, 60 - (time.monotonic() - stopped)))
    await asyncio.to_thread(pg.start)
    back = time.monotonic()

    def all_three() -> dict[str, dict[str, Any]] | None:
        found = {p.caller: b.voicemail_ticket(token, p.caller) for p in plans}
        return found if all(found.values()) else None  # type: ignore[return-value]

    found = await apoll(all_three, timeout=60, every=1)
    print(f"database down {back - stopped:.0f}s; tickets {time.monotonic() - back:.1f}s after")
    if not found:
        got = [p.caller for p in plans if b.voicemail_ticket(token, p.caller)]
        pytest.fail(
            f"{len(got)} of 3 messages are tickets 60 s after the database is back:\n"
            + b.log_excerpt("voice message", "registered", "sweep", "ERROR", "WARNING"),
            False,
        )
    for p in plans:
        assert len(b.tickets_of(token, p.caller)) == 1, p.caller


# -- c: the database frozen: no dead air, and the API says 503 at once ------------------------
async def test_a_frozen_database_costs_callers_no_more_than_the_bound_of_silence(
    lab: Lab, fault_backend: Callable[..., FaultBackend], pg: PgInstance
) -> None:
    b = fault_backend()
    token = b.supervisor()
    assert http(b.url + "/api/v1/tickets", token).status == 200  # the token is good
    # 6: progress; no number keyed, so the caller's own tickets are looked up; then the menu
    progress = CallPlan(caller=caller(), dtmf="6", hold_ms=30000)
    # 7: a message, ended with # while the caller stays on the line for the closing prompts
    message = CallPlan(caller=caller(), hold_ms=15000)
    pg.freeze()
    try:
        async with (
            StampedCall(lab, progress) as asking,
            StampedCall(lab, message, steps=MESSAGE_ENDED_WITH_HASH) as leaving,
        ):
            reply = await asyncio.to_thread(http, b.url + "/api/v1/tickets", token, timeout=5)
            (asked, asked_t), (left, left_t) = await asyncio.gather(asking.done(), leaving.done())
    finally:
        pg.thaw()
    # every measure first (printed), then one failure that names each broken promise
    problems = []
    print(f"GET /api/v1/tickets, database frozen: {reply.status} in {reply.elapsed:.2f}s")
    error = reply.body.get("error", {}) if isinstance(reply.body, dict) else {}
    if reply.status != 503 or not reply.headers.get("Retry-After"):
        problems.append(f"GET /api/v1/tickets: {reply}")
    elif error.get("code") != "database_unavailable":
        problems.append(f"GET /api/v1/tickets: not database_unavailable: {reply.body}")
    for who, seen, timeline in (("progress", asked, asked_t), ("message", left, left_t)):
        assert seen.call.ok, seen.call.output
        silence, detail = longest_silence(timeline)
        print(f"{who} caller: AGI {seen.agi}; {detail}")
        if silence > BACKEND_TIMEOUT + SILENCE_SLACK:
            problems.append(f"{who} caller heard dead air: {detail}")
    assert "hotline/progress_enter" in asked.played(), asked.played()
    assert left_a_message(left), left.summary()
    # nothing lost either: the message is a ticket once the database answers again
    ticket = await apoll(lambda: b.voicemail_ticket(token, message.caller), timeout=30)
    if not ticket:
        problems.append("the message left during the freeze is no ticket 30 s after the thaw")
    assert not problems, "\n".join(problems) + "\n" + b.log_excerpt("ERROR", "WARNING")


# -- d: Redis killed and restarted ----------------------------------------------------------
async def test_agents_stay_on_duty_and_callers_reach_the_queue_across_a_redis_restart(
    lab: Lab, fault_backend: Callable[..., FaultBackend], redis_server: RedisInstance
) -> None:
    b = fault_backend(HOTLINE_REDIS_URL=redis_server.url)
    agent = b.user("坐席", "agent")
    login = b.api(agent, "POST", "/api/v1/agents/me/login", {"extension": "8001"})
    assert login["logged_in"] is True
    token = b.supervisor()

    def on_duty() -> bool:
        listed = b.api(token, "GET", "/api/v1/agents")["agents"]
        return (login["agent"], "8001") in {(a["agent"], a["extension"]) for a in listed}

    assert on_duty()
    redis_server.kill9()
    seen = await observe_call(lab, CallPlan(caller=caller(), dtmf="1"))  # consultation
    assert seen.call.ok, seen.call.output
    handoffs = [(e.get("Route"), e.get("Type")) for e in seen.user_events("HotlineHandoff")]
    assert handoffs == [("queue", "consultation")], (
        "\n".join(seen.summary()) + "\n" + b.log_excerpt("ERROR", "WARNING", "shared state")
    )
    assert not seen.user_events("HotlineFallback"), seen.summary()

    redis_server.restart()  # empty: nothing was kept
    assert await apoll(on_duty, timeout=15), "the agent is not on duty after Redis is back:\n" + (
        b.log_excerpt("ERROR", "WARNING", "shared state", "presence")
    )


# -- e: the backend started while the database is down ---------------------------------------
async def test_a_backend_started_without_its_database_answers_and_catches_up(
    lab: Lab, fault_backend: Callable[..., FaultBackend], pg: PgInstance
) -> None:
    b = fault_backend(start=False)
    b.cli("db", "upgrade")  # migrated earlier
    token = b.supervisor()
    pg.stop()
    b.start(upgrade=False)
    assert http(b.url + "/healthz").status == 200
    status, body = b.readyz()
    print("readyz, database down:", status, body)
    assert status == 503 and body["status"] == "not_ready", body  # type: ignore[index]
    assert body["checks"]["database"]["ok"] is False, body  # type: ignore[index]

    plan = CallPlan(caller=caller(), hold_ms=SPEECH_THEN_HANG_UP)
    seen = await observe_steps(lab, plan, MESSAGE_EITHER_WAY)
    assert seen.call.ok, seen.call.output
    assert left_a_message(seen) or seen.user_events("HotlineFallback"), seen.summary()
    assert left_a_message(seen), "the caller was not offered a voice message: " + str(
        seen.summary()
    )

    await asyncio.to_thread(pg.start)
    back = time.monotonic()
    ready = await apoll(lambda: b.readyz()[0] == 200, timeout=30)
    print(f"readyz 200 after {time.monotonic() - back:.1f}s: {b.readyz()}")
    assert ready, f"not ready 30 s after the database is back: {b.readyz()}"
    ticket = await apoll(lambda: b.voicemail_ticket(token, plan.caller), timeout=30)
    assert ticket, "the message left during the outage is no ticket:\n" + b.log_excerpt(
        "voice message", "sweep", "ERROR", "WARNING"
    )
    assert len(b.tickets_of(token, plan.caller)) == 1
    assert poll(lambda: http(b.url + "/healthz").status == 200, 5)


# -- f: callers in the ARI IVR when the backend is killed ------------------------------------
async def test_callers_stranded_in_the_ari_ivr_by_a_kill_are_released_by_the_restart(
    lab: Lab, fault_backend: Callable[..., FaultBackend]
) -> None:
    # 12346: the IVR over ARI. A kill leaves the caller in Stasis, where Asterisk plays nothing;
    # the restarted backend adopts the stopped node's channel and sends it to the dialplan's
    # safe path (before the dead-man time-out would).
    b = fault_backend()
    plan = CallPlan(number="12346", caller=caller(), hold_ms=30000)
    async with StampedCall(lab, plan, timeout_s=60) as call:
        await call.wait_for(
            lambda e: e.get("Event") == "Newexten" and e.get("Application") == "StasisBroadcast",
            20,
        )
        await asyncio.sleep(2)  # in the welcome
        b.kill9()
        await asyncio.sleep(2)
        await asyncio.to_thread(b.start)
        restarted = time.monotonic()
        fallback = await call.wait_for(
            lambda e: e.get("Event") == "UserEvent" and e.get("UserEvent") == "HotlineFallback",
            20,
        )
        took = time.monotonic() - restarted
        print(f"ARI caller sent to the safe path {took:.1f}s after the restart")
        seen, _ = await call.done()
    assert fallback is not None
    assert seen.call.ok, seen.call.output
    assert "with no handler: to the safe path" in b.output()
