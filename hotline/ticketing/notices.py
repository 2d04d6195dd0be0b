"""Notifications and violation records in SQL: what the SLA watch tells people, and what it
counts against whom (rules S-4 … S-6).

A notification is one row per user, keyed by what raised it and the user, so a timer that runs
twice tells nobody twice; it is written in the transaction of the change that raised it, read
through ``GET /api/v1/notifications`` and pushed to the user's console socket after the commit
(:class:`Notifier`'s ``push``); the emergency plan's also go out by SMS, as a durable job of
their own. A violation is one row per missed deadline (keyed by its timer); when it is a
handler's, the handler's count in the month and in the quarter is checked against rule S-6's
thresholds and the crossing miss raises the notice to the supervisor and the discipline officer,
once (keyed by handler and period).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hotline.db import as_utc
from hotline.jobs import enqueue
from hotline.ticketing.tables import notifications, users, violations
from hotline.ticketing.watch import SUPERVISION, Audience

log = logging.getLogger(__name__)

SEND_SMS = "notify.sms"  # the durable job that hands one SMS to the gateway
MONTH_LIMIT, QUARTER_LIMIT = 3, 5  # rule S-6: 3 in a month, 5 in a quarter, per handler
Push = Callable[[str, dict[str, Any]], Awaitable[object]]  # (user id, message)


class SmsGateway(Protocol):
    """The SMS port (its adapters, which do the I/O, are :mod:`hotline.sms`)."""

    async def send(self, phone: str, text: str) -> None:
        """Hand one message to the gateway; raises when it was not taken."""
        ...


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    user_id: str
    kind: str
    ticket_number: str | None
    text: str
    created_at: dt.datetime
    read_at: dt.datetime | None

    def message(self) -> dict[str, Any]:
        """As the console socket carries it (PROTOCOL.md: ``notice``)."""
        return {
            "type": "notice",
            "id": self.id,
            "kind": self.kind,
            "ticket": self.ticket_number,
            "text": self.text,
            "at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Violation:
    id: int
    ticket_number: str
    stage: str
    rule: str
    party: str
    unit_id: str | None
    handler_id: str | None
    due_at: dt.datetime
    recorded_at: dt.datetime
    month: str
    quarter: str


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


class Notifier:
    """Writes notifications in the caller's transaction; pushes the new ones after it."""

    def __init__(self, push: Push | None = None) -> None:
        self.push = push  # the console socket, when the backend serves one

    async def recipients(self, conn: AsyncConnection, audiences: Sequence[Audience]) -> list[str]:
        wanted: list[str] = []
        for audience in audiences:
            query = sa.select(users.c.id).where(users.c.role.in_(sorted(audience.roles)))
            if audience.unit is not None:
                query = query.where(users.c.unit_id == audience.unit)
            for row in (await conn.execute(query.order_by(users.c.id))).all():
                if row.id not in wanted:
                    wanted.append(row.id)
        return wanted

    async def notify(
        self,
        conn: AsyncConnection,
        key: str,
        audiences: Sequence[Audience],
        kind: str,
        text: str,
        now: dt.datetime,
        *,
        ticket: tuple[str, str] | None = None,  # (id, number)
        sms: bool = False,
    ) -> list[Notice]:
        """One row per recipient (none twice for the same key); the rows that are new."""
        made: list[Notice] = []
        for user_id in await self.recipients(conn, audiences):
            row_key = f"{key}#{user_id}"[:250]
            stmt = (
                _insert(conn, notifications)
                .values(
                    key=row_key,
                    user_id=user_id,
                    kind=kind,
                    ticket_id=ticket[0] if ticket else None,
                    ticket_number=ticket[1] if ticket else None,
                    text=text[:500],
                    created_at=now.astimezone(dt.UTC),  # SQLite keeps no offset
                )
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(notifications.c.id)
            )
            new_id = (await conn.execute(stmt)).scalar()
            if new_id is None:
                continue  # told already (the timer ran before)
            made.append(
                Notice(int(new_id), user_id, kind, ticket[1] if ticket else None, text, now, None)
            )
            if sms:
                payload = {"user_id": user_id, "text": text[:500]}
                await enqueue(conn, SEND_SMS, row_key, payload, now, now=now, max_attempts=6)
        return made

    async def pushed(self, made: Sequence[Notice]) -> None:
        """After the commit: each new notice to its user's console, if one is connected."""
        if self.push is None:
            return
        for notice in made:
            try:
                await self.push(notice.user_id, notice.message())
            except Exception as exc:  # the list in the API has it; the socket is a courtesy
                log.warning("notice %d not pushed (%s)", notice.id, type(exc).__name__)

    # -- violations (S-5) and their thresholds (S-6) ------------------------------------------
    async def violation(
        self,
        conn: AsyncConnection,
        key: str,
        *,
        ticket: tuple[str, str],
        stage: str,
        rule: str,
        party: str,
        unit_id: str | None,
        handler_id: str | None,
        due: dt.datetime,
        now: dt.datetime,
        tz: dt.tzinfo,
    ) -> list[Notice]:
        """Record the miss (once per key); the S-6 notices it raises, if it crosses a line."""
        counted = [f"handler:{handler_id}"] if handler_id else []
        if party == "unit" and stage == "sign" and unit_id:
            counted.append(f"unit:{unit_id}")
        if conn.dialect.name == "postgresql":  # one count at a time per handler / unit, or two
            for name in counted:  # misses committed together would each count one short
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"s6:{name}"}
                )
        local = due.astimezone(tz)
        month = f"{local:%Y-%m}"
        quarter = f"{local.year}-Q{(local.month - 1) // 3 + 1}"
        stmt = (
            _insert(conn, violations)
            .values(
                key=key[:250],
                ticket_id=ticket[0],
                ticket_number=ticket[1],
                stage=stage,
                rule=rule,
                party=party,
                unit_id=unit_id,
                handler_id=handler_id,
                due_at=due.astimezone(dt.UTC),
                recorded_at=now.astimezone(dt.UTC),
                month=month,
                quarter=quarter,
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(violations.c.id)
        )
        if (await conn.execute(stmt)).scalar() is None:
            return []
        made: list[Notice] = []
        if party == "unit" and stage == "sign" and unit_id:
            made += await self._unit_signs(conn, unit_id, month, ticket, now)
        if handler_id is None:
            return made
        for period, value, limit, word in (
            ("month", month, MONTH_LIMIT, "本月"),
            ("quarter", quarter, QUARTER_LIMIT, "本季度"),
        ):
            column = violations.c.month if period == "month" else violations.c.quarter
            count = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(violations)
                    .where(violations.c.handler_id == handler_id, column == value)
                )
            ).scalar_one()
            if count < limit:
                continue
            name = await self._name(conn, handler_id)
            text = (
                f"违规累计：{name}（{unit_id or '—'}）{word}（{value}）已有 {count} 次超时违规，"
                f"达到通报批评标准（规则 S-6：一个月满 3 次、一个季度满 5 次）。"
            )
            made += await self.notify(
                conn,
                f"s6/{period}/{handler_id}/{value}",
                [SUPERVISION],
                f"s6-{period}",
                text,
                now,
                ticket=ticket,
            )
        return made

    async def _unit_signs(
        self,
        conn: AsyncConnection,
        unit_id: str,
        month: str,
        ticket: tuple[str, str],
        now: dt.datetime,
    ) -> list[Notice]:
        """Art. 20(2) (S-5): a unit not signing in time 3 times in a month is a violation of
        the unit's, whoever its handlers are — noticed once, by the third."""
        count = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(violations)
                .where(
                    violations.c.unit_id == unit_id,
                    violations.c.stage == "sign",
                    violations.c.month == month,
                )
            )
        ).scalar_one()
        if count < MONTH_LIMIT:
            return []
        text = (
            f"违规累计：{unit_id} 单位{month}已有 {count} 次未在规定时间内签收，"
            "达到 1 个月累计满 3 次的追责情形（第二十条第二项）。"
        )
        return await self.notify(
            conn,
            f"s5/unit-sign/{unit_id}/{month}",
            [SUPERVISION],
            "s5-unit-sign",
            text,
            now,
            ticket=ticket,
        )

    @staticmethod
    async def _name(conn: AsyncConnection, user_id: str) -> str:
        row = (await conn.execute(sa.select(users.c.name).where(users.c.id == user_id))).first()
        return str(row.name) if row is not None else user_id

    @staticmethod
    async def sole_handler(conn: AsyncConnection, unit_id: str) -> str | None:
        """The unit's handler when it names exactly one (D-7); with several, a miss before
        anyone signed names none of them."""
        rows = (
            await conn.execute(
                sa.select(users.c.id).where(
                    users.c.unit_id == unit_id, users.c.role == "unit_handler"
                )
            )
        ).all()
        return str(rows[0].id) if len(rows) == 1 else None


# -- the read side ----------------------------------------------------------------------------


async def list_notices(
    engine: AsyncEngine, user_id: str, unread_only: bool, limit: int, before: int | None
) -> list[Notice]:
    query = sa.select(notifications).where(notifications.c.user_id == user_id)
    if unread_only:
        query = query.where(notifications.c.read_at.is_(None))
    if before is not None:
        query = query.where(notifications.c.id < before)
    query = query.order_by(notifications.c.id.desc()).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        Notice(
            r.id,
            r.user_id,
            r.kind,
            r.ticket_number,
            r.text,
            as_utc(r.created_at),
            as_utc(r.read_at),
        )
        for r in rows
    ]


async def mark_read(engine: AsyncEngine, user_id: str, notice_id: int, now: dt.datetime) -> bool:
    """The user's own notice is read; False: no such notice of theirs."""
    async with engine.begin() as conn:
        found = (
            await conn.execute(
                sa.select(notifications.c.id, notifications.c.read_at).where(
                    notifications.c.id == notice_id, notifications.c.user_id == user_id
                )
            )
        ).first()
        if found is None:
            return False
        if found.read_at is None:
            await conn.execute(
                notifications.update()
                .where(notifications.c.id == notice_id)
                .values(read_at=now.astimezone(dt.UTC))
            )
    return True


async def list_violations(
    engine: AsyncEngine,
    *,
    unit: str | None,
    handler: str | None,
    month: str | None,
    limit: int,
) -> list[Violation]:
    query = sa.select(violations)
    if unit is not None:
        query = query.where(violations.c.unit_id == unit)
    if handler is not None:
        query = query.where(violations.c.handler_id == handler)
    if month is not None:
        query = query.where(violations.c.month == month)
    query = query.order_by(violations.c.due_at, violations.c.id).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        Violation(
            r.id,
            r.ticket_number,
            r.stage,
            r.rule,
            r.party,
            r.unit_id,
            r.handler_id,
            as_utc(r.due_at),
            as_utc(r.recorded_at),
            r.month,
            r.quarter,
        )
        for r in rows
    ]
