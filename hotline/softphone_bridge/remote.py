"""Call control across nodes: an agent's console may be on one node and its caller run by
another (the node that claimed the call). A hold, unhold or transfer for a call this node does
not run is asked of every node over Redis; the node that runs the call does it and answers on
the asking node's own channel. No answer in time: ``call_elsewhere`` (that node stopped, or the
call ended)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hotline.background import Background
from hotline.queue.calls import QueueCalls
from hotline.softphone_bridge.protocol import ProtocolError
from hotline.state import Keys, listen

log = logging.getLogger(__name__)
ANSWER_WITHIN = 5.0  # seconds the node that runs the call has to answer


async def run_control(calls: QueueCalls, action: str, call_id: str, fields: dict[str, Any]) -> None:
    """One control on a call this node runs (raises what the call control raises)."""
    if action == "hold":
        await calls.hold(call_id)
    elif action == "unhold":
        await calls.unhold(call_id)
    elif action == "transfer":
        await calls.transfer(call_id, fields["to"], fields.get("agent"))
    elif action == "utility":  # rule H-6: the three-way call with the utility's duty line
        await calls.conference(call_id, fields["utility"], fields.get("ticket") or "")
    else:
        raise ProtocolError("unknown_type", f"{action} is not a call control")


class RemoteControl:
    def __init__(self, redis: Redis, prefix: str, node: str, calls: QueueCalls) -> None:
        self.redis, self.keys, self.node, self.calls = redis, Keys(prefix), node, calls
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.background = Background("call control for other nodes")
        self.listening = asyncio.Event()

    async def ask(self, action: str, call_id: str, fields: dict[str, Any]) -> None:
        """Have the node that runs ``call_id`` do ``action``; raises its refusal."""
        ident = uuid.uuid4().hex
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = answer
        ask = {"id": ident, "from": self.node, "action": action, "call": call_id, **fields}
        try:
            await self.redis.publish(self.keys.console_control, json.dumps(ask))
            reply = await asyncio.wait_for(answer, ANSWER_WITHIN)
        except TimeoutError:
            raise ProtocolError("call_elsewhere", "no node answers for that call") from None
        except RedisError:
            raise ProtocolError("unavailable", "the shared state is away; try again") from None
        finally:
            self._waiting.pop(ident, None)
        if reply.get("code"):
            raise ProtocolError(str(reply["code"]), str(reply.get("message", "")))

    async def run(self) -> None:
        """Hear the controls asked of every node (do those of calls run here) and the answers
        to this node's own questions."""
        mine = self.keys.console_reply(self.node)

        def heard(channel: str, text: str) -> None:
            data = json.loads(text)
            if channel == mine:
                waiting = self._waiting.get(str(data.get("id")))
                if waiting is not None and not waiting.done():
                    waiting.set_result(data)
            elif str(data.get("call")) in self.calls.calls:
                self.background.submit(self._do(data), f"control {data.get('action')}")

        channels = [self.keys.console_control, mine]
        await listen(self.redis, channels, heard, self.listening, "call control")

    async def _do(self, asked: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": asked.get("id")}
        fields: dict[str, Any] = {k: asked[k] for k in ("to", "agent") if k in asked}
        try:
            await run_control(self.calls, str(asked["action"]), str(asked["call"]), fields)
        except Exception as exc:
            code = getattr(exc, "code", None)
            reply |= {"code": code if isinstance(code, str) else "internal", "message": str(exc)}
        with contextlib.suppress(RedisError):
            await self.redis.publish(
                self.keys.console_reply(str(asked.get("from"))), json.dumps(reply)
            )
