"""The callbacks on the web: the citizen's self-evaluation page, and the figures.

- ``GET /evaluate/{code}`` — the public page (Chinese, for a phone's screen): the ticket's number
  and the three answers; ``POST`` the same address with ``result`` (and ``reason``). A code works
  once and not after the deadline; nothing of the citizen is shown.
- ``GET /api/v1/callbacks/figures`` — reach rate, satisfaction rate, attempts per completed
  survey, in all, per unit and per month (the office's).
- ``GET /api/v1/tickets/{ref}/callbacks`` — a ticket's campaigns and their attempts.
"""

from __future__ import annotations

import asyncio
import html
import zoneinfo

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from hotline.appkeys import CLOCK, SETTINGS
from hotline.callbacks.store import ANSWERS, CALLING, DONE, EVALUATING, Campaigns, figures
from hotline.errors import Forbidden
from hotline.ticketing import http as tickets_http
from hotline.ticketing.actions import OFFICE
from hotline.web import current_user, ok

CAMPAIGNS = web.AppKey("callback_campaigns", Campaigns)
LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
MESSAGES = {
    "unknown": (404, "评价链接无效", "没有找到这个评价链接，请核对短信中的地址。"),
    "used": (410, "已评价", "这件诉求已经评价过了，感谢您的参与。"),
    "expired": (410, "评价已截止", "评价时间已过。如有意见，请拨打12345。"),
}
PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - 12345政务服务热线</title>
<style>
body{{font-family:system-ui,"PingFang SC","Noto Sans CJK SC",sans-serif;margin:0;padding:1rem;
max-width:32rem;margin:auto;color:#222;line-height:1.6}}
h1{{font-size:1.3rem}} label{{display:block;padding:.8rem;border:1px solid #ccc;border-radius:8px;
margin:.5rem 0;font-size:1.1rem}} textarea{{width:100%;box-sizing:border-box;font-size:1rem}}
button{{width:100%;padding:.9rem;font-size:1.1rem;background:#1677ff;color:#fff;border:0;
border-radius:8px;margin-top:1rem}}
</style></head><body>
<h1>{title}</h1>
{body}
</body></html>
"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    text = PAGE.format(title=html.escape(title), body=body)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _refusal(status: str) -> web.Response:
    code, title, text = MESSAGES[status]
    return page(title, f"<p>{html.escape(text)}</p>", code)


async def evaluate_form(request: web.Request) -> web.Response:
    found = await request.app[CAMPAIGNS].lookup(request.match_info["code"])
    if found.status != "ok":
        return _refusal(found.status)
    choices = "".join(
        f'<label><input type="radio" name="result" value="{v}" required> {LABELS[v]}</label>'
        for v in ANSWERS
    )
    body = (
        f"<p>您反映的诉求（工单 {html.escape(found.number)}）已办理完毕，请您评价办理结果。</p>"
        f'<form method="post">{choices}'
        '<p>意见（选填）：</p><textarea name="reason" rows="4" maxlength="500"></textarea>'
        '<button type="submit">提交评价</button></form>'
    )
    return page("满意度评价", body)


async def evaluate(request: web.Request) -> web.Response:
    try:
        form = await request.post()
    except Exception:  # a body that is no form (a broken multipart, say): ask again
        return page("请选择", "<p>请选择满意、基本满意或不满意后再提交。</p>", 400)
    result = str(form.get("result") or "")
    if result not in ANSWERS:
        return page("请选择", "<p>请选择满意、基本满意或不满意后再提交。</p>", 400)
    reason = str(form.get("reason") or "").strip()
    done = await request.app[CAMPAIGNS].redeem(request.match_info["code"], result, reason)
    if done.status != "ok":
        return _refusal(done.status)
    return page("感谢您的评价", f"<p>您的评价（{LABELS[result]}）已收到，感谢您的参与。</p>")


async def callback_figures(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.actor.role not in OFFICE:
        raise Forbidden("role_forbidden", "the callback figures are the office's", "B-1")
    rows = await request.app[CAMPAIGNS].rows()
    return ok(figures(rows, request.app[SETTINGS].city.timezone))


async def ticket_callbacks(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.actor.role not in OFFICE:
        raise Forbidden("role_forbidden", "a ticket's callbacks are the office's", "B-1")
    service = request.app[tickets_http.SERVICE]
    ticket = await service.get(user.actor, request.match_info["ref"])
    return ok({"callbacks": await request.app[CAMPAIGNS].of_ticket(ticket.id)})


async def metrics_text(app: web.Application) -> bytes:
    """The callback figures for ``/metrics``: this month's (city time) by unit, and the
    campaigns by state — from the database; nothing when it is away. A scrape reads one month
    of campaigns, not all of them; the API has every month."""
    campaigns, timezone = app[CAMPAIGNS], app[SETTINGS].city.timezone
    now = app[CLOCK].now().astimezone(zoneinfo.ZoneInfo(timezone))
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    try:
        async with asyncio.timeout(1.0):
            rows = await campaigns.rows(since=month)
            counts = await campaigns.counts()
    except Exception:
        return b""
    shown = figures(rows, timezone)
    registry = CollectorRegistry(auto_describe=True)
    u = ["unit"]
    gauges = {
        "reach_rate": Gauge(
            "hotline_callback_reach_rate",
            "phone callbacks that reached the citizen, this month",
            u,
            registry=registry,
        ),
        "satisfaction_rate": Gauge(
            "hotline_callback_satisfaction_rate",
            "(satisfied + basically satisfied) / evaluated, this month",
            u,
            registry=registry,
        ),
        "attempts_per_survey": Gauge(
            "hotline_callback_attempts_per_survey",
            "calls per completed survey, this month",
            u,
            registry=registry,
        ),
    }
    per_unit = {"": shown["all"], **shown["units"]}
    for unit, values in per_unit.items():
        for name, gauge in gauges.items():
            if values[name] is not None:
                gauge.labels(unit or "all").set(values[name])
    states = Gauge("hotline_callbacks", "callback campaigns by state", ["state"], registry=registry)
    for state in (CALLING, EVALUATING, DONE):
        states.labels(state).set(counts[state])
    busy = Gauge("hotline_callback_calls", "survey calls in progress", registry=registry)
    busy.set(counts["calls"])
    return generate_latest(registry)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/evaluate/{code}", evaluate_form)
    r.add_post("/evaluate/{code}", evaluate)
    r.add_get("/api/v1/callbacks/figures", callback_figures)
    r.add_get("/api/v1/tickets/{ref}/callbacks", ticket_callbacks)
