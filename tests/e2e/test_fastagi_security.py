"""Who may open a FastAGI session: forged sessions against the real backend, and a real call.

A forged session speaks AGI as Asterisk does — the environment block of script ``ivr`` with a
caller number, then it waits for commands — but with a wrong secret, with none, or from a peer
that is not allowed. The backend must run nothing for it and send it nothing: the socket just
closes, and no ticket, office task or journal row appears. A real call through the lab's
Asterisk, with the secret the lab put in its dialplan, still reaches the hand-off.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hotline.agi.testing import env_block
from hotline.lab.calls import observe_call
from hotline.lab.instance import Lab
from hotline.lab.sipp import CallPlan
from tests.e2e.conftest import LabBackend, journal_rows

pytestmark = pytest.mark.e2e

WAIT = 10.0  # the backend's idle timeout is 30 s: a session it served would outlast this


def caller() -> str:
    return "138" + "".join(random.choice("0123456789") for _ in range(8))


async def forged_session(
    port: int, number: str, secret: str | None, source: str = "127.0.0.1"
) -> tuple[bytes, float]:
    """One session as Asterisk opens it; what the backend sent before it closed, and when."""
    script = "ivr" if secret is None else f"ivr?secret={secret}"
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:{port}/{script}",
        "agi_channel": "PJSIP/citizen-trunk-0000ff01",
        "agi_language": "zh",
        "agi_type": "PJSIP",
        "agi_uniqueid": f"forged-{random.randrange(10**9)}.1",
        "agi_callerid": number,
        "agi_calleridname": "citizen",
        "agi_dnid": "12345",
        "agi_context": "citizen-inbound",
        "agi_extension": "12345",
        "agi_priority": "5",
    }
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    received = b""
    try:
        writer.write(env_block(env))
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), WAIT)  # commands, until it closes
    except ConnectionResetError:  # dropped on connect: nothing was sent to us
        pass
    finally:
        writer.close()
    return received, time.monotonic() - started


async def made_for(url: str, numbers: list[str]) -> dict[str, int]:
    """Rows the backend made for these callers or for a forged call id (the backend may also
    sweep in messages other tests left on the switch: those are not counted)."""
    queries = {
        "tickets": "SELECT count(*) FROM tickets WHERE citizen_phone IN :numbers "
        "OR upstream_id LIKE '%forged-%'",
        "office_tasks": "SELECT count(*) FROM office_tasks JOIN tickets "
        "ON tickets.id = office_tasks.ticket_id WHERE tickets.citizen_phone IN :numbers "
        "OR tickets.upstream_id LIKE '%forged-%'",
        "ivr_calls": "SELECT count(*) FROM ivr_calls WHERE caller IN :numbers "
        "OR call_id LIKE 'forged-%'",
    }
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            out = {}
            for table, query in queries.items():
                statement = sa.text(query).bindparams(sa.bindparam("numbers", expanding=True))
                out[table] = int((await conn.execute(statement, {"numbers": numbers})).scalar())
            return out
    finally:
        await engine.dispose()


def health(b: LabBackend) -> dict[str, object]:
    with urllib.request.urlopen(b.url + "/healthz", timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


async def test_forged_sessions_run_nothing_and_a_real_call_still_gets_through(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    b = backend(HOTLINE_SERVER_AGI_ALLOWED_PEERS="127.0.0.1")
    port = int(b.env["HOTLINE_SERVER_AGI_PORT"])
    secret = lab.credentials().agi_secret
    forged = {
        "wrong secret": (caller(), "0" * 32, "127.0.0.1"),
        "no secret": (caller(), None, "127.0.0.1"),
        "peer not allowed": (caller(), secret, "127.0.0.2"),  # even with the right secret
    }
    for why, (number, given, source) in forged.items():
        received, took = await forged_session(port, number, given, source)
        assert received == b"", f"{why}: the backend sent {received[:80]!r}"
        assert took < WAIT, f"{why}: the socket was not closed"

    # nothing was created for them: no ticket (and no call-back task), no journal row
    await asyncio.sleep(1.0)  # a journal row would be written just after the session
    numbers = [number for number, _, _ in forged.values()]
    assert await made_for(database, numbers) == {"tickets": 0, "office_tasks": 0, "ivr_calls": 0}
    assert health(b)["agi"] == {
        "port": port,
        "active": 0,
        "refused": 3,
        "refusals": {"busy": 0, "peer": 1, "secret": 2},
    }
    log = b.output()
    assert "refused a session from 127.0.0.1" in log and "wrong secret in the AGI URL" in log
    assert "no secret in the AGI URL" in log
    assert "refused a connection from 127.0.0.2" in log and "not an allowed peer" in log
    for why in ("wrong secret", "no secret"):  # the caller masked (rule Y-1)
        number = forged[why][0]
        assert f"{number[:3]}****{number[-4:]}" in log
    assert all(number not in log for number, _, _ in forged.values())
    assert secret not in log and "0" * 32 not in log  # no secret is ever logged

    # the lab's Asterisk brings the secret its dialplan was rendered with: served as before
    b.agent_on_duty()
    plan = CallPlan(caller=caller(), dtmf="1")
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    (handoff,) = seen.user_events("HotlineHandoff")
    assert (handoff["Route"], handoff["Type"]) == ("queue", "consultation")
    assert not seen.user_events("HotlineFallback")
    (row,) = await journal_rows(database, plan.caller)
    assert (row["script"], row["route"], row["outcome"]) == ("ivr", "queue:consultation", "routed")
    assert health(b)["agi"] == {
        "port": port,
        "active": 0,
        "refused": 3,
        "refusals": {"busy": 0, "peer": 1, "secret": 2},
    }
    assert secret not in b.output()  # nor when a real session is served


async def test_a_backend_without_the_lab_s_secret_sends_real_calls_to_the_safe_path(
    lab: Lab, backend: Callable[..., LabBackend], database: str
) -> None:
    # a backend that does not know the dialplan's secret serves nobody: the dialplan takes
    # its safe path (calls never strand), and the backend says why
    b = backend(HOTLINE_SERVER_AGI_SECRET="not-the-lab-s-secret-0123")
    plan = CallPlan(caller=caller(), dtmf="1", hold_ms=8000)
    seen = await observe_call(lab, plan)
    assert seen.call.ok, seen.call.output
    (fallback,) = seen.user_events("HotlineFallback")
    assert fallback["Route"] == ""  # the backend set nothing
    assert ("hotline-fallback", "Playback", "hotline/fallback") in seen.dialplan
    assert await journal_rows(database, plan.caller, wait=1.0) == []
    log = b.output()
    assert "wrong secret in the AGI URL" in log and plan.caller not in log
    assert lab.credentials().agi_secret not in log
