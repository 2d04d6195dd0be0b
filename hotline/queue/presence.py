"""Which agents are logged in, and how long a caller would wait — the IVR's view of the queue.

The full ACD (agent states, priorities, dispatch) is the queue issue's; until then agents log in
and out through the API, and the estimated wait is whatever the queue last published (0 with no
queue running). In-process memory for one node, Redis for several (same keys as ``state.py``).
"""

from __future__ import annotations

import json
import time
from typing import Protocol, cast

from redis.asyncio import Redis


class AgentPresence(Protocol):
    async def login(self, agent_id: str, extension: str) -> None: ...

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

    async def login(self, agent_id: str, extension: str) -> None:
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
        self.key = f"{prefix}agents:present"
        self.wait_key = f"{prefix}queue:estimated_wait"

    async def login(self, agent_id: str, extension: str) -> None:
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

    async def login(self, agent_id: str, extension: str) -> None:
        raise NotImplementedError("agents log in through `hotline serve`")

    async def logout(self, agent_id: str) -> None:
        raise NotImplementedError("agents log out through `hotline serve`")

    async def available(self) -> int:
        return 1

    async def agents(self) -> dict[str, str]:
        return {}

    async def estimated_wait(self, priority: int) -> float:
        return 0.0
