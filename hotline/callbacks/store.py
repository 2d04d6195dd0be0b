"""The callback campaigns in the database: one row per ticket and callback cycle (rules B-1 … B-3).

Theory of operation. A ticket entering CALLBACK publishes ``CallbackDue``; its durable job
:meth:`Campaigns.start` writes the campaign: for a citizen who came by telephone the first call's
time (:func:`hotline.callbacks.plan.first_call`), for a written channel — or when no call would
end before the deadline — a one-time self-evaluation code at once.

Calls are **claimed** by :meth:`Campaigns.claim` in one transaction that first takes a
PostgreSQL advisory lock (every node's claim waits for the one before it, for milliseconds), then
counts the calls in progress across all nodes and takes at most ``cap`` minus those, ``FOR
UPDATE SKIP LOCKED``: the cap holds across nodes, and no attempt is taken twice. A claimed
attempt has a lease (``call_until``): a node that dies on a call leaves its lease to run out,
and :meth:`reap` records that attempt as ``failed`` — the citizen is not called twice for the
same attempt — and plans the next. :meth:`finish` records the outcome and, in the same
transaction, the follow-up: the next call's time, or the self-evaluation code and its message
job, or the durable ``callback.decide`` job that puts the answer on the ticket.

Codes are kept as their SHA-256 only; one works once and not after the deadline. What happens
when nobody answers by the deadline is ``callback.unreached`` (README: "no objection").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hotline.callbacks.plan import Campaign, first_call, in_window, next_call
from hotline.clock import Clock
from hotline.db import as_utc, metadata
from hotline.jobs import enqueue

TZ = sa.DateTime(timezone=True)
CALLING, EVALUATING, DONE = "calling", "evaluating", "done"
DECIDE = "callback.decide"  # job: the answer onto the ticket
EVALUATION_MESSAGE = "callback.evaluation"  # job: the code to the citizen
START = "callback.start"  # job: the campaign of a CallbackDue event
ANSWERS = ("satisfied", "basically_satisfied", "unsatisfied")
CLAIM_LOCK = 0x12345B1  # the advisory lock every claim takes (PostgreSQL)
WRITTEN = "written"

callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # <ticket id>:<cycle>
    sa.Column("ticket_id", sa.String(36), nullable=False),
    sa.Column("number", sa.String(32), nullable=False),
    sa.Column("cycle", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),  # phone | written
    sa.Column("utility", sa.Boolean, nullable=False),  # B-3: by telephone only
    sa.Column("units", sa.String(500), nullable=False),  # the units that handled it, a,b
    sa.Column("state", sa.String(16), nullable=False),  # calling | evaluating | done
    sa.Column("deadline", TZ, nullable=False),
    sa.Column("due_at", TZ, nullable=True),  # the next call
    sa.Column("base", sa.Integer, nullable=False),  # attempts of the ticket's earlier cycles
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("outcomes", sa.Text, nullable=False),  # JSON [[n, outcome, ended, began], …]
    sa.Column("call_until", TZ, nullable=True),  # a call in progress: its lease
    sa.Column("owner", sa.String(100), nullable=True),
    sa.Column("last_call_at", TZ, nullable=True),
    sa.Column("code_hash", sa.String(64), nullable=True),
    sa.Column("code_sent_at", TZ, nullable=True),
    sa.Column("result", sa.String(32), nullable=False),  # an answer, no_objection, unreached
    sa.Column("method", sa.String(20), nullable=False),  # phone | self_evaluation
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("done_at", TZ, nullable=True),
    sa.Index("ix_callbacks_state_due_at", "state", "due_at"),
    sa.Index("ix_callbacks_code_hash", "code_hash"),
    sa.Index("ix_callbacks_ticket_id", "ticket_id"),
    sa.Index("ix_callbacks_call_until", "call_until"),  # calls in progress: the cap, the reaper
)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_code() -> str:
    """A one-time code: 12 URL-safe characters (72 bits), short enough for an SMS link."""
    return secrets.token_urlsafe(9)


@dataclass(frozen=True, slots=True)
class Placement:
    """One claimed survey call."""

    id: str  # the campaign
    ticket_id: str
    number: str
    cycle: int
    n: int  # the ticket's attempt number: the channel is survey-<number>-<n>

    @property
    def channel_id(self) -> str:
        return f"survey-{self.number}-{self.n}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one placed attempt."""

    placement: Placement
    outcome: str  # answered | busy | no_answer | rejected | hung_up | no_key | failed
    answer: str = ""  # answered with a key: satisfied | basically_satisfied | unsatisfied
    reason: str = ""
    recording: str = ""


@dataclass(frozen=True, slots=True)
class Redeemed:
    status: str  # ok | used | expired | unknown
    number: str = ""


def _utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC)  # SQLite keeps no offset: every time in UTC


class Campaigns:
    def __init__(
        self,
        engine: AsyncEngine,
        campaign: Campaign,
        clock: Clock,
        *,
        cap: int = 10,
        lease: dt.timedelta = dt.timedelta(minutes=10),
        unreached: str = "no_objection",
    ) -> None:
        self.engine, self.campaign, self.clock = engine, campaign, clock
        self.cap, self.lease, self.unreached = cap, lease, unreached
        self.on_change: list[Any] = []  # pokes: a job was written (the local worker)
        # a call placed now must end this long before the deadline (the code's time after it)
        self._margin = campaign.call_time + campaign.evaluation_time

    # -- the campaign starts -----------------------------------------------------------------
    async def start(self, payload: dict[str, Any]) -> str:
        """The campaign of one ``CallbackDue`` event; idempotent on the ticket and cycle.
        Returns its state ("" when it existed already)."""
        now = self.clock.now()
        ready = dt.datetime.fromisoformat(str(payload["ready"]))
        raw = payload.get("deadline")
        # a date the working calendar has no data for (C-2): two days, on the wall clock
        deadline = dt.datetime.fromisoformat(raw) if raw else ready + dt.timedelta(days=2)
        utility = bool(payload.get("utility"))
        mode = "phone" if payload.get("channel") == "phone" or utility else WRITTEN
        if not payload.get("reachable", True):  # no number at all: the office's at once
            mode = WRITTEN
        key = f"{payload['ticket_id']}:{payload['cycle']}"
        async with self.engine.begin() as conn:
            if await conn.scalar(sa.select(callbacks.c.id).where(callbacks.c.id == key)):
                return ""
            await conn.execute(  # an earlier cycle still open (the office acted): it ends
                callbacks.update()
                .where(callbacks.c.ticket_id == payload["ticket_id"], callbacks.c.state != DONE)
                .values(
                    state=DONE,
                    result="superseded",
                    call_until=None,
                    owner=None,
                    done_at=_utc(now),
                )
            )
            base = await conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(callbacks.c.attempts), 0)).where(
                    callbacks.c.ticket_id == payload["ticket_id"]
                )
            )
            first = (
                first_call(self.campaign, max(ready, now), deadline) if mode == "phone" else None
            )
            row = {
                "id": key,
                "ticket_id": payload["ticket_id"],
                "number": payload["number"],
                "cycle": int(payload["cycle"]),
                "mode": mode,
                "utility": utility,
                "units": ",".join(payload.get("units") or [])[:500],
                "state": CALLING,
                "deadline": _utc(deadline),
                "due_at": _utc(first) if first else None,
                "base": int(base or 0),
                "attempts": 0,
                "outcomes": "[]",
                "result": "",
                "method": "",
                "created_at": _utc(now),
            }
            await conn.execute(callbacks.insert().values(**row))
            state = CALLING
            if first is None:
                state = await self._no_more_calls(conn, key, utility, now)
        self._poke()
        return state

    # -- calls -------------------------------------------------------------------------------
    async def claim(self, node: str, limit: int | None = None) -> list[Placement]:
        """Due calls for this node, never more in progress across nodes than the cap."""
        now = _utc(self.clock.now())
        if not in_window(self.campaign, now):
            return []  # outside the calling window (a backlog waits for the morning)
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK)))
            busy = await conn.scalar(
                sa.select(sa.func.count()).where(callbacks.c.call_until.is_not(None))
            )
            room = self.cap - int(busy or 0)
            if limit is not None:
                room = min(room, limit)
            if room <= 0:
                return []
            pick = (
                sa.select(callbacks.c.id)
                .where(
                    callbacks.c.state == CALLING,
                    callbacks.c.call_until.is_(None),
                    callbacks.c.due_at <= now,
                    callbacks.c.deadline >= now + self._margin,  # late ones: expire()
                )
                .order_by(callbacks.c.due_at, callbacks.c.id)
                .limit(room)
            )
            if conn.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            rows = (
                await conn.execute(
                    callbacks.update()
                    .where(callbacks.c.id.in_(pick.scalar_subquery()))
                    .values(
                        call_until=now + self.lease,
                        owner=node,
                        attempts=callbacks.c.attempts + 1,
                        last_call_at=now,
                        due_at=None,
                    )
                    .returning(
                        callbacks.c.id,
                        callbacks.c.ticket_id,
                        callbacks.c.number,
                        callbacks.c.cycle,
                        callbacks.c.base,
                        callbacks.c.attempts,
                    )
                )
            ).all()
        return [Placement(r.id, r.ticket_id, r.number, r.cycle, r.base + r.attempts) for r in rows]

    async def finish(
        self,
        placement: Placement,
        outcome: str,
        *,
        answer: str = "",
        reason: str = "",
        recording: str = "",
        node: str | None = None,
    ) -> str:
        """The attempt's outcome (answered with a key: ``answer``); the campaign's state after
        it. Only the node holding the attempt records it (a lease that ran out was reaped)."""
        done = Outcome(placement, outcome, answer, reason, recording)
        return (await self.finish_many([done], node=node)).get(placement.id, "")

    async def finish_many(
        self, outcomes: Sequence[Outcome], *, node: str | None = None
    ) -> dict[str, str]:
        """Several attempts' outcomes in one transaction (a busy dialer's calls ending
        together): each campaign's state after it, by id; one not held here is left out."""
        if not outcomes:
            return {}
        now = self.clock.now()
        states: dict[str, str] = {}
        by_id = {o.placement.id: o for o in outcomes}
        async with self.engine.begin() as conn:
            q = sa.select(callbacks).where(
                callbacks.c.id.in_(list(by_id)), callbacks.c.call_until.is_not(None)
            )
            if node is not None:
                q = q.where(callbacks.c.owner == node)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            for row in (await conn.execute(q.order_by(callbacks.c.id))).all():
                o = by_id[row.id]
                if row.base + row.attempts != o.placement.n:  # reaped, and the next claimed
                    continue
                states[row.id] = await self._record(
                    conn, row, o.outcome, now, o.answer, o.reason, o.recording
                )
        if states:
            self._poke()
        return states

    async def reap(self) -> int:
        """Calls whose node died before their outcome: ``failed``, and the next planned."""
        now = _utc(self.clock.now())
        reaped = 0
        async with self.engine.begin() as conn:
            q = sa.select(callbacks).where(callbacks.c.call_until < now)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            for row in (await conn.execute(q)).all():
                await self._record(conn, row, "failed", self.clock.now(), "", "", "")
                reaped += 1
        if reaped:
            self._poke()
        return reaped

    async def _record(
        self,
        conn: AsyncConnection,
        row: Any,
        outcome: str,
        now: dt.datetime,
        answer: str,
        reason: str,
        recording: str,
    ) -> str:
        outcomes = json.loads(row.outcomes)
        began = as_utc(row.last_call_at) or now
        ended = _utc(now).isoformat()
        outcomes.append([row.base + row.attempts, outcome, ended, _utc(began).isoformat()])
        values: dict[str, Any] = {
            "outcomes": json.dumps(outcomes),
            "call_until": None,
            "owner": None,
        }
        if answer:
            await self._end(
                conn, row, answer, "phone", now, reason=reason, recording=recording, **values
            )
            return DONE
        # the spacing runs from the attempt's end: a citizen who rang out is not called at once
        later = next_call(self.campaign, [o[1] for o in outcomes], now, as_utc(row.deadline))
        if later is not None:
            values["due_at"] = _utc(later)
            await conn.execute(callbacks.update().where(callbacks.c.id == row.id).values(**values))
            return CALLING
        await conn.execute(callbacks.update().where(callbacks.c.id == row.id).values(**values))
        return await self._no_more_calls(conn, row.id, row.utility, now)

    async def _no_more_calls(
        self, conn: AsyncConnection, key: str, utility: bool, now: dt.datetime
    ) -> str:
        """No call (left) before the deadline: a self-evaluation code through the original
        channel — but a utility emergency is called back by telephone only (B-3): the
        office's."""
        row = (await conn.execute(sa.select(callbacks).where(callbacks.c.id == key))).one()
        if utility:
            await self._end(conn, row, "unreached", "phone", now)
            return DONE
        if as_utc(row.deadline) - now < self.campaign.evaluation_time:  # a code too late
            await self._end(conn, row, "unreached", "self_evaluation", now)
            return DONE
        await conn.execute(callbacks.update().where(callbacks.c.id == key).values(state=EVALUATING))
        payload = {  # the code is made when it is sent, and kept as its hash only
            "campaign": key,
            "ticket_id": row.ticket_id,
            "number": row.number,
            "deadline": as_utc(row.deadline).isoformat(),
        }
        await enqueue(conn, EVALUATION_MESSAGE, key, payload, now, now=now, ref=row.ticket_id)
        return EVALUATING

    async def _end(
        self,
        conn: AsyncConnection,
        row: Any,
        result: str,
        method: str,
        now: dt.datetime,
        *,
        reason: str = "",
        recording: str = "",
        **more: Any,
    ) -> bool:
        """The campaign ends with ``result`` (``more``: other columns to write with it) and,
        in the same transaction, the job that puts it on the ticket; False: it had ended."""
        ended = await conn.execute(
            callbacks.update()
            .where(callbacks.c.id == row.id, callbacks.c.state != DONE)
            .values(state=DONE, result=result, method=method, done_at=_utc(now), **more)
        )
        if ended.rowcount != 1:
            return False
        payload = {
            "ticket_id": row.ticket_id,
            "cycle": row.cycle,
            "result": result,
            "method": method,
            "reason": reason,
            "recording": recording,
        }
        await enqueue(conn, DECIDE, row.id, payload, now, now=now, ref=row.ticket_id)
        return True

    # -- self-evaluation ---------------------------------------------------------------------
    async def lookup(self, code: str) -> Redeemed:
        """What a code is good for now, without using it (the page's first look)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(callbacks).where(callbacks.c.code_hash == code_hash(code))
                )
            ).first()
        return self._status(row)

    def _status(self, row: Any) -> Redeemed:
        if row is None:
            return Redeemed("unknown")
        if row.state != EVALUATING:
            return Redeemed("used", row.number)
        if as_utc(row.deadline) <= self.clock.now():
            return Redeemed("expired", row.number)
        return Redeemed("ok", row.number)

    async def redeem(self, code: str, answer: str, reason: str = "") -> Redeemed:
        """The citizen's own evaluation; a code works once and not after the deadline."""
        if answer not in ANSWERS:
            raise ValueError(f"answer is one of {', '.join(ANSWERS)}")
        now = self.clock.now()
        async with self.engine.begin() as conn:
            q = sa.select(callbacks).where(callbacks.c.code_hash == code_hash(code))
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = (await conn.execute(q)).first()
            status = self._status(row)
            if row is None or status.status != "ok":
                return status
            await self._end(conn, row, answer, "self_evaluation", now, reason=reason[:500])
        self._poke()
        return status

    async def issue_code(self, key: str) -> str | None:
        """A fresh one-time code for a campaign waiting for its self-evaluation (its hash
        stored; a code sent before is no longer good); None when it is no longer waiting."""
        code = new_code()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                callbacks.update()
                .where(callbacks.c.id == key, callbacks.c.state == EVALUATING)
                .values(code_hash=code_hash(code), code_sent_at=_utc(self.clock.now()))
            )
        return code if result.rowcount else None

    async def drop(self, key: str, result: str) -> bool:
        """The ticket left this callback another way (the office recorded it, or it was
        re-handled): the campaign ends with no call and no code."""
        now = self.clock.now()
        async with self.engine.begin() as conn:
            done = await conn.execute(
                callbacks.update()
                .where(callbacks.c.id == key, callbacks.c.state != DONE)
                .values(state=DONE, result=result, call_until=None, owner=None, done_at=_utc(now))
            )
        return bool(done.rowcount)

    async def unsent(self, key: str) -> bool:
        """The code could not be sent (no number): the campaign ends unreached — the office's,
        never "no objection" for a citizen who was never asked."""
        now = self.clock.now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                callbacks.update()
                .where(callbacks.c.id == key, callbacks.c.state == EVALUATING)
                .values(state=DONE, result="unreached", method="self_evaluation", done_at=_utc(now))
            )
        return bool(result.rowcount)

    async def expire(self) -> int:
        """Codes past the deadline, unused: ``unreached`` (no objection or the office's); and
        calls due that can no longer be placed in time (a backlog after an outage): the code
        now, or the office's."""
        now = self.clock.now()
        done = 0
        async with self.engine.begin() as conn:
            late = sa.select(callbacks).where(
                callbacks.c.state == CALLING,
                callbacks.c.call_until.is_(None),
                callbacks.c.deadline < _utc(now) + self._margin,
            )
            if conn.dialect.name == "postgresql":
                late = late.with_for_update(skip_locked=True)
            for row in (await conn.execute(late)).all():
                await conn.execute(
                    callbacks.update().where(callbacks.c.id == row.id).values(due_at=None)
                )
                await self._no_more_calls(conn, row.id, row.utility, now)
                done += 1
            q = sa.select(callbacks).where(
                callbacks.c.state == EVALUATING, callbacks.c.deadline <= _utc(now)
            )
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            for row in (await conn.execute(q)).all():
                result = "no_objection" if self.unreached == "no_objection" else "unreached"
                done += await self._end(conn, row, result, "self_evaluation", now)
        if done:
            self._poke()
        return done

    def _poke(self) -> None:
        for poke in self.on_change:
            poke()

    # -- reading -----------------------------------------------------------------------------
    async def of_ticket(self, ticket_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(callbacks)
                    .where(callbacks.c.ticket_id == ticket_id)
                    .order_by(callbacks.c.cycle)
                )
            ).all()
        return [_public(r) for r in rows]

    async def in_progress(self) -> int:
        async with self.engine.connect() as conn:
            n = await conn.scalar(
                sa.select(sa.func.count()).where(callbacks.c.call_until.is_not(None))
            )
        return int(n or 0)

    async def rows(self, since: dt.datetime | None = None) -> Sequence[Any]:
        """The campaigns (``since``: those ended from then on), for the figures."""
        q = sa.select(callbacks)
        if since is not None:
            q = q.where(callbacks.c.done_at >= _utc(since))
        async with self.engine.connect() as conn:
            return (await conn.execute(q)).all()

    async def counts(self) -> dict[str, int]:
        """Campaigns by state, and ``calls``: survey calls in progress (for /metrics)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(callbacks.c.state, sa.func.count()).group_by(callbacks.c.state)
                )
            ).all()
        out = {state: 0 for state in (CALLING, EVALUATING, DONE)} | {s: int(n) for s, n in rows}
        return out | {"calls": await self.in_progress()}


def _public(r: Any) -> dict[str, Any]:
    """A campaign as the API shows it: no code, no phone."""
    return {
        "ticket_id": r.ticket_id,
        "number": r.number,
        "cycle": r.cycle,
        "mode": r.mode,
        "state": r.state,
        "deadline": as_utc(r.deadline).isoformat(),
        "next_call": as_utc(r.due_at).isoformat() if r.due_at else None,
        "attempts": [
            {"n": o[0], "outcome": o[1], "at": o[2], "started": o[3]}
            for o in json.loads(r.outcomes)
        ],
        "result": r.result,
        "method": r.method,
    }


def figures(rows: Sequence[Any], timezone: str) -> dict[str, Any]:
    """Rule B-1's figures from the campaigns: reach rate (phone campaigns that reached the
    citizen, of those that ended), satisfaction rate ((satisfied + basically satisfied) of
    those evaluated), attempts per completed survey — in all, per unit and per month (city
    time of the ending)."""
    tz = zoneinfo.ZoneInfo(timezone)
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        if r.state != DONE or r.done_at is None:
            continue
        month = as_utc(r.done_at).astimezone(tz).strftime("%Y-%m")
        counted = _counted(r)
        keys = [("", month), ("", "")]  # the totals once per campaign; each unit its own
        for unit in [u for u in r.units.split(",") if u] or ["-"]:
            keys += [(unit, month), (unit, "")]
        for key in keys:
            g = groups.setdefault(key, dict.fromkeys(COUNTS, 0))
            for name, n in counted.items():
                g[name] += n
    out: dict[str, Any] = {"all": _rates(dict.fromkeys(COUNTS, 0)), "units": {}, "months": {}}
    out["unit_months"] = []
    for (unit, month), g in sorted(groups.items()):
        shown = _rates(g)
        if not unit and not month:
            out["all"] = shown
        elif not month:
            out["units"][unit] = shown
        elif not unit:
            out["months"][month] = shown
        else:
            out["unit_months"].append({"unit": unit, "month": month, **shown})
    return out


def _counted(r: Any) -> dict[str, int]:
    """What one ended campaign adds to the counts."""
    reached = r.mode == "phone" and r.method == "phone" and r.result in ANSWERS
    evaluated = r.result in ANSWERS
    return {
        "ended": 1,
        "phone_ended": int(r.mode == "phone"),
        "reached": int(reached),
        "attempts_completed": r.attempts if reached else 0,
        "evaluated": int(evaluated),
        "satisfied": int(evaluated and r.result != "unsatisfied"),
    }


COUNTS = ("ended", "phone_ended", "reached", "attempts_completed", "evaluated", "satisfied")


def _rates(g: dict[str, int]) -> dict[str, Any]:
    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {
        **g,
        "reach_rate": ratio(g["reached"], g["phone_ended"]),
        "satisfaction_rate": ratio(g["satisfied"], g["evaluated"]),
        "attempts_per_survey": ratio(g["attempts_completed"], g["reached"]),
    }
