"""Which agents are logged in, and how long a caller would wait — the IVR's view of the queue.

A log-in is kept in the database (:class:`DurablePresence`) and published to the shared state
the IVR and every node read; after a Redis restart the shared state is rebuilt from the
database, so no agent is silently off duty. While Redis is away the database answers.

The full ACD (agent states, priorities, dispatch) is the queue issue's; until then agents log in
and out through the API, and the estimated wait is whatever the queue last published (0 with no
queue running). In-process memory for one node, Redis for several (same keys as ``state.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Mapping
from typing import Protocol, TypeVar, cast

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import Clock
from hotline.db import metadata
from hotline.queue.acd import Priority
from hotline.queue.agent import AgentStateError
from hotline.queue.service import QueueService
from hotline.state import Keys

log = logging.getLogger(__name__)
T = TypeVar("T")

# who is logged in: the source of truth behind the shared state (rebuilt from here after a
# Redis restart); the migration is 0005
agent_sessions = sa.Table(
    "agent_sessions",
    metadata,
    sa.Column("agent_id", sa.String(64), primary_key=True),
    sa.Column("extension", sa.String(16), nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("skills", sa.Text, nullable=False, server_default="{}"),  # JSON; migration 0006
)


class AgentPresence(Protocol):
    async def login(
        self, agent_id: str, extension: str, skills: Mapping[str, int] | None = None
    ) -> None: ...

    async def logout(self, agent_id: str) -> None: ...

    async def available(self) -> int: ...

    async def agents(self) -> dict[str, str]:
        """agent id -> extension"""
        ...

    async def estimated_wait(self, priority: int) -> float: ...


class MemoryPresence:
    def __init__(self) -> None:
        self._agents: dict[str, str] = {}
        self.wait = 0.0

    async def login(
        self, agent_id: str, extension: str, skills: Mapping[str, int] | None = None
    ) -> None:
        self._agents[agent_id] = extension

    async def logout(self, agent_id: str) -> None:
        self._agents.pop(agent_id, None)

    async def available(self) -> int:
        return len(self._agents)

    async def agents(self) -> dict[str, str]:
        return dict(self._agents)

    async def estimated_wait(self, priority: int) -> float:
        return self.wait


class RedisPresence:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.key = Keys(prefix).agents_present
        self.wait_key = Keys(prefix).estimated_wait

    async def login(
        self, agent_id: str, extension: str, skills: Mapping[str, int] | None = None
    ) -> None:
        await self.redis.hset(
            self.key, agent_id, json.dumps({"extension": extension, "since": time.time()})
        )

    async def logout(self, agent_id: str) -> None:
        await self.redis.hdel(self.key, agent_id)

    async def available(self) -> int:
        return int(await self.redis.hlen(self.key))

    async def agents(self) -> dict[str, str]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.key))  # decode_responses
        return {k: json.loads(v)["extension"] for k, v in raw.items()}

    async def estimated_wait(self, priority: int) -> float:
        value = await self.redis.get(self.wait_key)
        return float(value) if value else 0.0


class AssumeAvailable:
    """For process AGI without shared state: it cannot see who is logged in, so it does not
    send callers to a voice message for lack of agents (the dialplan's queue decides)."""

    async def login(
        self, agent_id: str, extension: str, skills: Mapping[str, int] | None = None
    ) -> None:
        raise NotImplementedError("agents log in through `hotline serve`")

    async def logout(self, agent_id: str) -> None:
        raise NotImplementedError("agents log out through `hotline serve`")

    async def available(self) -> int:
        return 1

    async def agents(self) -> dict[str, str]:
        return {}

    async def estimated_wait(self, priority: int) -> float:
        return 0.0


class DurablePresence:
    """Log-ins in the database, published to the shared state; each side bounded in time."""

    def __init__(
        self, engine: AsyncEngine, shared: AgentPresence, clock: Clock, timeout: float = 1.0
    ) -> None:
        self.engine, self.shared, self.clock, self.timeout = engine, shared, clock, timeout

    async def _bounded(self, work: Awaitable[T]) -> T:
        async with asyncio.timeout(self.timeout):
            return await work

    async def _publish(self, work: Awaitable[None], what: str) -> None:
        try:
            await self._bounded(work)
        except Exception as exc:  # rebuilt from the database when shared state is back
            log.warning("shared state: %s not published (%s)", what, type(exc).__name__)

    async def login(
        self, agent_id: str, extension: str, skills: Mapping[str, int] | None = None
    ) -> None:
        async with self.engine.begin() as conn:
            held = sa.or_(
                agent_sessions.c.agent_id == agent_id, agent_sessions.c.extension == extension
            )  # one agent per phone: a session left at this extension ends here
            await conn.execute(agent_sessions.delete().where(held))
            await conn.execute(
                agent_sessions.insert().values(
                    agent_id=agent_id,
                    extension=extension,
                    since=self.clock.now(),
                    skills=json.dumps(dict(skills or {})),
                )
            )
        await self._publish(self.shared.login(agent_id, extension), "log-in")

    async def logout(self, agent_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(agent_sessions.delete().where(agent_sessions.c.agent_id == agent_id))
        await self._publish(self.shared.logout(agent_id), "log-out")

    async def stored(self) -> dict[str, str]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(agent_sessions.c.agent_id, agent_sessions.c.extension))
            ).all()
        return {str(a): str(e) for a, e in rows}

    async def skills(self) -> dict[str, dict[str, int]]:
        """Each stored log-in's skills (restored with it)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(agent_sessions.c.agent_id, agent_sessions.c.skills))
            ).all()
        return {str(a): dict(json.loads(k or "{}")) for a, k in rows}

    async def agents(self) -> dict[str, str]:
        try:
            return await self._bounded(self.shared.agents())
        except Exception as exc:
            log.warning("shared state away (%s): agents from the database", type(exc).__name__)
            return await self._bounded(self.stored())

    async def available(self) -> int:
        try:
            return await self._bounded(self.shared.available())
        except Exception as exc:
            log.warning("shared state away (%s): agents from the database", type(exc).__name__)
            return len(await self._bounded(self.stored()))

    async def estimated_wait(self, priority: int) -> float:
        return await self._bounded(self.shared.estimated_wait(priority))

    async def restore(self) -> int:
        """Publish every stored log-in again (shared state restarted empty); how many."""
        stored = await self.stored()
        for agent_id, extension in stored.items():
            await self._bounded(self.shared.login(agent_id, extension))
        log.info("shared state: %d agents on duty restored from the database", len(stored))
        return len(stored)


class AcdPresence:
    """What the IVR reads, from the ACD itself: agents staffed (logged in, not paused) and the
    estimated wait from real figures; log-ins are kept by ``durable`` (the database)."""

    UNKNOWN_WAIT = 10.0**9  # no agent staffed: the wait is unbounded

    def __init__(self, queue: QueueService, durable: DurablePresence) -> None:
        self.queue, self.durable = queue, durable

    async def login(
        self, agent_id: str, extension: str, skills: Mapping[str, int] | None = None
    ) -> None:
        await self.durable.login(agent_id, extension, skills)

    async def logout(self, agent_id: str) -> None:
        await self.durable.logout(agent_id)

    async def available(self) -> int:
        return await self.queue.staffed()

    async def agents(self) -> dict[str, str]:
        snapshot = await self.queue.snapshot()
        return {a.agent_id: a.extension for a in snapshot.agents if a.state.value != "logged_out"}

    async def estimated_wait(self, priority: int) -> float:
        """``priority`` as the IVR hands it on: 9 a utility emergency, else an ordinary call."""
        wanted = Priority.UTILITY if priority == 9 else Priority.NORMAL
        wait = await self.queue.estimated_wait(wanted)
        return wait if math.isfinite(wait) else self.UNKNOWN_WAIT

    async def restore(self) -> int:
        """Agents logged in before a restart are on duty again (READY, with their skills);
        how many."""
        stored = await self.durable.stored()
        skills = await self.durable.skills()
        snapshot = await self.queue.snapshot()
        here = {a.agent_id for a in snapshot.agents if a.state.value != "logged_out"}
        restored = 0
        for agent_id, extension in stored.items():
            if agent_id in here:
                continue
            try:
                await self.queue.login(agent_id, extension, skills.get(agent_id, {}))
            except AgentStateError as exc:  # the phone is someone else's by now
                log.warning("queue: %s not restored (%s)", agent_id, exc.code)
                continue
            restored += 1
        if restored:
            log.info("queue: %d agents on duty restored from the database", restored)
        return restored
