"""The queue's Prometheus figures, counted from the queue log records the model makes."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from hotline.queue.acd import Acd, AcdConfig
from hotline.queue.agent import Login, Pause
from hotline.queue.metrics import QueueMetrics


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_offered_answered_abandoned_and_the_service_level_follow_the_queue() -> None:
    acd, metrics = Acd(AcdConfig(wrap_up_seconds=0)), QueueMetrics()
    for agent in ("a1", "a2", "a3"):
        metrics.count(acd.command(agent, Login(f"80{agent[-1]}0"), 0.0).records)
    metrics.count(acd.command("a3", Pause("lunch"), 0.0).records)
    for call, at in (("c1", 0.0), ("c2", 0.0), ("c3", 1.0), ("c4", 2.0), ("c5", 3.0)):
        metrics.count(acd.enter(call, at, masked_caller="139****5678").records)
    metrics.count(acd.dispatch(3.0).records)  # c1 -> a1, c2 -> a2
    metrics.count(acd.answered("c1", "a1", 10.0).records)  # 10 s: within 15
    metrics.count(acd.answered("c2", "a2", 20.0).records)  # 20 s: not
    metrics.count(acd.abandon("c3", 4.0).records)  # after 3 s: a short abandon
    metrics.count(acd.abandon("c4", 40.0).records)  # after 38 s
    seen = samples(metrics.render(acd.snapshot(50.0)))
    q = (("queue", "hotline"),)
    assert seen[("hotline_queue_offered_total", q)] == 5
    assert seen[("hotline_queue_answered_total", q)] == 2
    assert seen[("hotline_queue_answered_within_service_level_total", q)] == 1
    assert seen[("hotline_queue_abandoned_total", q)] == 2
    assert seen[("hotline_queue_abandoned_short_total", q)] == 1
    assert seen[("hotline_queue_service_level", q)] == 1 / 5
    assert seen[("hotline_queue_answer_seconds_sum", q)] == 30  # average speed: 30 / 2
    assert seen[("hotline_queue_waiting", q)] == 1  # c5
    assert seen[("hotline_queue_longest_wait_seconds", q)] == 47
    by_state = {
        dict(labels)["state"]: v
        for (name, labels), v in seen.items()
        if name == "hotline_queue_agents"
    }
    assert by_state["talking"] == 2 and by_state["paused"] == 1 and by_state["ready"] == 0


def test_no_caller_and_no_call_id_is_ever_a_label() -> None:
    # rule Y-1: no caller identity in published figures
    acd, metrics = Acd(), QueueMetrics()
    metrics.count(acd.command("a1", Login("8001"), 0.0).records)
    metrics.count(acd.enter("hotline-lab-1.7", 0.0, masked_caller="13912345678").records)
    text = metrics.render(acd.snapshot(1.0)).decode()
    assert "hotline-lab-1.7" not in text and "5678" not in text and "a1" not in text
