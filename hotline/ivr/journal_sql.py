"""The call journal on SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.db import as_utc, metadata
from hotline.ivr.journal import CallRecord

ivr_calls = sa.Table(
    "ivr_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(64), nullable=False, index=True),
    sa.Column("script", sa.String(200), nullable=False),
    sa.Column("caller", sa.String(64), nullable=False),  # rule Y-1: never shown to units
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("digits", sa.String(64), nullable=False),
    sa.Column("route", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("steps", sa.String(500), nullable=False),
    sa.Column("error", sa.String(500), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
)


class SqlCallJournal:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(self, call: CallRecord) -> None:
        """Store the call's row, once: a row for this call id already there is kept."""
        async with self.engine.begin() as conn:
            seen = await conn.execute(
                sa.select(ivr_calls.c.id).where(ivr_calls.c.call_id == call.call_id[:64]).limit(1)
            )
            if seen.first() is not None:
                return
            await conn.execute(
                ivr_calls.insert().values(
                    call_id=call.call_id[:64],
                    script=call.script[:200],
                    caller=call.caller[:64],
                    channel=call.channel[:200],
                    digits=call.digits[:64],
                    route=call.route[:64],
                    outcome=call.outcome[:32],
                    steps=">".join(call.steps)[:500],
                    error=call.error[:500],
                    started_at=call.started_at,
                    ended_at=call.ended_at,
                )
            )

    async def recent(self, limit: int = 50) -> list[CallRecord]:
        query = ivr_calls.select().order_by(ivr_calls.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            CallRecord(
                call_id=r["call_id"],
                script=r["script"],
                caller=r["caller"],
                channel=r["channel"],
                digits=r["digits"],
                route=r["route"],
                outcome=r["outcome"],
                steps=[s for s in r["steps"].split(">") if s],
                error=r["error"],
                started_at=as_utc(r["started_at"]),
                ended_at=as_utc(r["ended_at"]),
            )
            for r in rows
        ]
