"""The queue as JSON, one way for every edge that shows it (the agent API, the console)."""

from __future__ import annotations

from typing import Any

from hotline.queue.acd import AgentView, Snapshot
from hotline.queue.agent import AgentState


def agent_json(view: AgentView | None, agent_id: str) -> dict[str, Any]:
    if view is None:
        return {"agent": agent_id, "state": AgentState.LOGGED_OUT.value}
    return {
        "agent": view.agent_id,
        "extension": view.extension,
        "state": view.state.value,
        "in_state": round(view.in_state, 1),
        "pause_reason": view.pause_reason,
        "call": view.call_id,
        "skills": dict(view.skills),
    }


def waiting_json(snapshot: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "call": w.call_id,
            "priority": w.priority.name.lower(),
            "position": w.position,
            "wait": round(w.wait, 1),
            "ringing": w.ringing,
        }
        for w in snapshot.waiting
    ]
