"""The SMS port's HTTP adapter against a real HTTP server on loopback, and the job that sends
one message to a user's phone (the emergency plan's alerts, rules E-2, E-3)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.jobs import Job
from hotline.sms import FakeSms, HttpSms, SmsRefused, gateway
from hotline.ticketing.model import Role
from hotline.ticketing.sla_watch import SmsSender
from hotline.ticketing.users import add_user


async def test_the_http_gateway_posts_json_and_a_refusal_raises() -> None:
    got: list[dict[str, Any]] = []
    answer = {"status": 200}

    async def take(request: web.Request) -> web.Response:
        got.append(json.loads(await request.text()))
        return web.Response(status=answer["status"])

    app = web.Application()
    app.router.add_post("/sms", take)
    async with TestServer(app, host="127.0.0.1") as server:
        sms = HttpSms(str(server.make_url("/sms")), timeout=5)
        await sms.send("13700000001", "重大紧急诉求：工单 20261203-0001")
        assert got == [{"to": "13700000001", "text": "重大紧急诉求：工单 20261203-0001"}]
        answer["status"] = 503
        with pytest.raises(SmsRefused):  # the durable job tries again
            await sms.send("13700000001", "again")
        await sms.close()
    assert gateway("off") is None and isinstance(gateway("http", "http://127.0.0.1:1/"), HttpSms)


async def test_the_sms_job_sends_to_the_users_phone_and_skips_a_user_without_one(
    engine: AsyncEngine,
) -> None:
    duty, _ = await add_user(engine, "值班领导", Role.DUTY_LEADER, phone="13700000001")
    nobody, _ = await add_user(engine, "派单", Role.DISPATCHER)
    fake = FakeSms()
    sender = SmsSender(engine, fake)
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    for user in (duty, nobody):
        await sender.send(
            Job(1, "notify.sms", f"k#{user}", {"user_id": user, "text": "警报"}, 1, 6, now)
        )
    assert fake.sent == [("13700000001", "警报")]
