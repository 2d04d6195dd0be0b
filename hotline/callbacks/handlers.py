"""The campaign's durable jobs (registered in :func:`hotline.bootstrap.job_handlers`).

- ``callback.start`` — a ``CallbackDue`` event: the campaign is written (:meth:`Campaigns.start`).
- ``callback.decide`` — the answer onto the ticket (B-2): satisfied or basically satisfied
  closes; unsatisfied goes back to the unit(s) with the reason; no objection closes; unreached
  is an office task. Idempotent: a ticket that has moved on is left alone.
- ``callback.evaluation`` — the self-evaluation code to the citizen through the notification
  port (SMS here; the message names the ticket, never the citizen).
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo

from hotline.callbacks.store import Campaigns
from hotline.jobs import Job
from hotline.ticketing.model import CallbackResult
from hotline.ticketing.notices import SmsGateway
from hotline.ticketing.service import TicketService
from hotline.utility.recordings import ConferenceRecordings

log = logging.getLogger(__name__)

UNREACHED_NOTE = "回访未联系上市民，自评价也未收到：请热线办决定（规则 B-2）。"
NO_CONTACT_NOTE = "市民没有留下电话号码，无法回访或发送自评价：请按原渠道回访（规则 B-1）。"
UTILITY_NOTE = "水电气抢修件电话回访未接通：请人工电话回访（规则 B-3）。"


def evaluation_text(number: str, url: str, deadline: dt.datetime, timezone: str) -> str:
    local = deadline.astimezone(zoneinfo.ZoneInfo(timezone))
    until = f"{local.month}月{local.day}日{local:%H:%M}"
    return f"【12345热线】您反映的诉求（工单{number}）已办理，请于{until}前评价：{url}"


class CallbackJobs:
    def __init__(
        self,
        campaigns: Campaigns,
        tickets: TicketService,
        sms: SmsGateway | None,
        *,
        evaluate_url: str,
        timezone: str,
        recordings: ConferenceRecordings | None = None,
    ) -> None:
        self.campaigns, self.tickets, self.sms = campaigns, tickets, sms
        self.recordings = recordings  # the reason said on the survey call, off the switch
        self.evaluate_url, self.timezone = evaluate_url, timezone

    async def start(self, job: Job) -> None:
        state = await self.campaigns.start(dict(job.payload))
        if state:
            log.info("callback %s: campaign %s", job.payload.get("number"), state)

    async def decide(self, job: Job) -> None:
        p = job.payload
        ticket_id, cycle, result = str(p["ticket_id"]), int(p["cycle"]), str(p["result"])
        if result == "unreached":
            note = UTILITY_NOTE if p.get("method") == "phone" else UNREACHED_NOTE
            await self.tickets.unreached(ticket_id, cycle, note)
            return
        recording = str(p.get("recording") or "")
        if recording and self.recordings is not None:
            await self.recordings.keep(recording)  # the office hears it with the ticket (Y-1)
        done = await self.tickets.survey_result(
            ticket_id,
            cycle,
            CallbackResult(result),
            method=str(p.get("method") or "phone"),
            reason=str(p.get("reason") or ""),
            recording=recording,
        )
        if recording and self.recordings is not None:
            await self.recordings.forget(recording)
        log.info("callback %s: %s", ticket_id, result if done else f"{result} (moved on)")

    async def message(self, job: Job) -> None:
        p = job.payload
        ticket_id, campaign = str(p["ticket_id"]), str(p["campaign"])
        phone, _ = await self.tickets.callback_contact(ticket_id, "self-evaluation")
        if not phone or self.sms is None:  # nobody to ask: the office's, not "no objection"
            await self.campaigns.unsent(campaign)
            await self.tickets.unreached(ticket_id, _cycle(campaign), NO_CONTACT_NOTE)
            return
        deadline = dt.datetime.fromisoformat(str(p["deadline"]))
        url = self.evaluate_url + str(p["code"])
        await self.sms.send(phone, evaluation_text(str(p["number"]), url, deadline, self.timezone))


def _cycle(campaign: str) -> int:
    return int(campaign.rpartition(":")[2])
