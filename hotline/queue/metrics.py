"""The queue's figures at ``/metrics``, in Prometheus text format (``prometheus-client``).

Counted from the queue log records as they are made (this node's since it started; a
Prometheus server sums nodes and takes rates): calls offered (ENTERQUEUE), answered (CONNECT),
answered within 15 s (GB/T 33358's standard for government hotlines), abandoned (ABANDON; those
under 5 s also counted apart, as call centres do: a caller who hung up at once was hardly
served badly), overflowed (EXITWITHTIMEOUT), and the answer times as a histogram (the average
speed of answer is its sum ÷ count). Read from the queue at each scrape: the service level so
far (answered within 15 s ÷ offered), the longest current wait, the waiting calls and the
agents by state. Labels are the queue and the agent state only — never a caller's number or a
call id (rule Y-1, and a label per call would grow without bound). Times are app_queue's whole
seconds.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from hotline.queue.acd import QueueEvent, Snapshot
from hotline.queue.agent import AgentState

SERVICE_LEVEL_SECONDS = 15  # GB/T 33358: answered within 15 s
SHORT_ABANDON_SECONDS = 5
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class QueueMetrics:
    def __init__(self, queue: str = "hotline") -> None:
        self.queue = queue
        self.registry = CollectorRegistry(auto_describe=True)
        r, q = self.registry, ["queue"]
        self.offered = Counter("hotline_queue_offered", "calls entering the queue", q, registry=r)
        self.answered = Counter("hotline_queue_answered", "calls an agent answered", q, registry=r)
        self.in_level = Counter(
            "hotline_queue_answered_within_service_level",
            f"calls answered within {SERVICE_LEVEL_SECONDS} s of entering",
            q,
            registry=r,
        )
        self.abandoned = Counter(
            "hotline_queue_abandoned", "callers who hung up while waiting", q, registry=r
        )
        self.short = Counter(
            "hotline_queue_abandoned_short",
            f"of those, callers who hung up within {SHORT_ABANDON_SECONDS} s",
            q,
            registry=r,
        )
        self.overflowed = Counter(
            "hotline_queue_overflowed", "callers sent on to a voice message", q, registry=r
        )
        self.answer = Histogram(
            "hotline_queue_answer_seconds",
            "seconds from entering the queue to an agent's answer",
            q,
            buckets=(5, 10, 15, 20, 30, 60, 120, 300),
            registry=r,
        )
        self.level = Gauge(
            "hotline_queue_service_level",
            f"answered within {SERVICE_LEVEL_SECONDS} s / offered, since this node started",
            q,
            registry=r,
        )
        self.waiting = Gauge("hotline_queue_waiting", "calls waiting now", q, registry=r)
        self.longest = Gauge(
            "hotline_queue_longest_wait_seconds", "the longest current wait", q, registry=r
        )
        self.agents = Gauge(
            "hotline_queue_agents", "agents by state", ["queue", "state"], registry=r
        )
        self._counts = {"offered": 0, "in_level": 0}

    def count(self, records: Iterable[QueueEvent]) -> None:
        q = self.queue
        for r in records:
            if r.event == "ENTERQUEUE":
                self.offered.labels(q).inc()
                self._counts["offered"] += 1
            elif r.event == "CONNECT":
                hold = _int(r.data, 0)
                self.answered.labels(q).inc()
                self.answer.labels(q).observe(hold)
                if hold <= SERVICE_LEVEL_SECONDS:
                    self.in_level.labels(q).inc()
                    self._counts["in_level"] += 1
            elif r.event == "ABANDON":
                self.abandoned.labels(q).inc()
                if _int(r.data, 2) < SHORT_ABANDON_SECONDS:
                    self.short.labels(q).inc()
            elif r.event == "EXITWITHTIMEOUT":
                self.overflowed.labels(q).inc()

    def render(self, snapshot: Snapshot) -> bytes:
        q = self.queue
        offered = self._counts["offered"]
        self.level.labels(q).set(self._counts["in_level"] / offered if offered else 1.0)
        self.waiting.labels(q).set(len(snapshot.waiting))
        self.longest.labels(q).set(max((w.wait for w in snapshot.waiting), default=0.0))
        for state in AgentState:
            n = sum(1 for a in snapshot.agents if a.state is state)
            self.agents.labels(q, state.value).set(n)
        return generate_latest(self.registry)


def _int(data: tuple[str, ...], i: int) -> int:
    try:
        return int(data[i])
    except (IndexError, ValueError):
        return 0
