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

KEEP_TRIES = 3  # tries to take the reason's recording off the switch before going on without
UNREACHED_NOTE = "回访未联系上市民，自评价也未收到：请热线办决定（规则 B-2）。"
NO_CONTACT_NOTE = "无法发送自评价（没有市民电话或未配置短信网关）：请按原渠道回访（规则 B-1）。"
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
        delivers: bool = True,
    ) -> None:
        self.campaigns, self.tickets, self.sms = campaigns, tickets, sms
        self.recordings = recordings  # the reason said on the survey call, off the switch
        self.delivers = delivers  # False: the SMS port only logs (watch.sms = "log")
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
            try:
                await self.recordings.keep(recording)  # the office hears it with the ticket
            except Exception as exc:
                if job.attempts < KEEP_TRIES:
                    raise  # the job tries again
                log.warning(  # the answer must not wait for ever on its recording
                    "callback %s: the reason's recording could not be taken (%s)",
                    ticket_id,
                    type(exc).__name__,
                )
                recording = ""
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
        cycle = _cycle(campaign)
        phone, kind = await self.tickets.callback_contact(ticket_id, cycle, "self-evaluation")
        if not kind:  # the ticket has moved on: nothing to evaluate
            await self.campaigns.drop(campaign, "moved_on")
            return
        if not phone or self.sms is None or not self.delivers:
            # nobody to ask, or no gateway that reaches anyone: the office's, never "no
            # objection" for a citizen who was never asked
            await self.campaigns.unsent(campaign)
            await self.tickets.unreached(ticket_id, cycle, NO_CONTACT_NOTE)
            return
        code = await self.campaigns.issue_code(campaign)
        if code is None:
            return
        deadline = dt.datetime.fromisoformat(str(p["deadline"]))
        url = self.evaluate_url + code
        await self.sms.send(phone, evaluation_text(str(p["number"]), url, deadline, self.timezone))


def _cycle(campaign: str) -> int:
    return int(campaign.rpartition(":")[2])
