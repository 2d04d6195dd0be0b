"""The ACD's Redis store against the real Redis: concurrent dispatchers on two "nodes" never
give one call to two agents nor two calls to one agent; refusals and no-ops write nothing; and
the same queue behaves the same on the memory store and on Redis."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from redis.asyncio import Redis

from hotline.errors import Conflict
from hotline.queue.acd import Acd, AcdConfig, Outcome, Priority, dump
from hotline.queue.agent import Login, Logout, PauseAfterCall, Unpause
from hotline.queue.service import merge
from hotline.queue.store import Change, MemoryQueueStore, QueueStore, RedisQueueStore
from hotline.state import AppBeats
from tests.conftest import REDIS_URL

CONFIG = AcdConfig(ring_timeout=15, wrap_up_seconds=5)


def dispatch_after(change: Change) -> Change:
    """The change, then a dispatch, as one step (as the queue service runs every change)."""

    def step(acd: Acd, now: float) -> Outcome:
        return merge(change(acd, now), acd.dispatch(now))

    return step


async def test_two_nodes_dispatching_at_once_never_double_assign(
    redis: tuple[Redis, str],
) -> None:
    _, prefix = redis
    clients = [Redis.from_url(REDIS_URL) for _ in range(2)]
    nodes = [RedisQueueStore(c, prefix, CONFIG) for c in clients]
    try:
        for n in range(10):
            await nodes[n % 2].apply(
                lambda acd, now, n=n: acd.command(f"a{n:02}", Login(f"80{n:02}"), now), 0.0
            )
        offers = []
        clock = itertools.count(1)

        async def caller(i: int) -> None:
            node = nodes[i % 2]
            out = await node.apply(
                dispatch_after(lambda acd, now: acd.enter(f"c{i:02}", now)), float(next(clock))
            )
            offers.extend(out.offers)
            again = await node.apply(lambda acd, now: acd.dispatch(now), float(next(clock)))
            offers.extend(again.offers)

        await asyncio.gather(*(caller(i) for i in range(50)))  # a burst of 50 on two nodes
        assert len(offers) == 10  # ten agents: ten offers, no more
        assert len({o.agent_id for o in offers}) == 10  # no agent has two calls
        assert len({o.call_id for o in offers}) == 10  # no call has two agents
        assert sum(n.conflicts for n in nodes) > 0  # they did collide, and it held
        snapshot = await nodes[0].read(lambda acd, now: acd.snapshot(now), 100.0)
        ringing = {a.agent_id: a.call_id for a in snapshot.agents if a.state.value == "ringing"}
        assert ringing == {o.agent_id: o.call_id for o in offers}
        assert len(snapshot.waiting) == 50
    finally:
        for c in clients:
            await c.aclose()


async def test_a_refusal_and_a_change_of_nothing_write_nothing(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    store = RedisQueueStore(client, prefix, CONFIG)
    await store.apply(lambda acd, now: acd.command("a1", Login("8001"), now), 0.0)
    version = await client.get(store.version_key)
    with pytest.raises(Conflict):
        await store.apply(lambda acd, now: acd.command("a2", Login("8001"), now), 1.0)
    await store.apply(lambda acd, now: acd.dispatch(now), 2.0)  # nobody waiting: no change
    assert await client.get(store.version_key) == version


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis: tuple[Redis, str]) -> QueueStore:
    if request.param == "memory":
        return MemoryQueueStore(CONFIG)
    client, prefix = redis
    return RedisQueueStore(client, prefix, CONFIG)


async def test_the_same_queue_on_either_store(store: QueueStore) -> None:
    await store.apply(lambda acd, now: acd.command("a1", Login("8001"), now), 0.0)
    await store.apply(lambda acd, now: acd.enter("c1", now), 1.0)
    out = await store.apply(
        dispatch_after(lambda acd, now: acd.enter("c2", now, priority=Priority.UTILITY)), 2.0
    )
    assert [(o.call_id, o.agent_id, o.offer_id) for o in out.offers] == [
        ("c2", "a1", "offer-c2-1")  # the utility call, though it came second
    ]
    expired = await store.apply(lambda acd, now: acd.expire(now), 17.0)
    assert [r.event for r in expired.records] == ["RINGNOANSWER"]
    again = await store.apply(lambda acd, now: acd.dispatch(now), 17.0)
    assert [o.offer_id for o in again.offers] == ["offer-c2-2"]
    await store.apply(lambda acd, now: acd.answered("c2", "a1", now), 18.0)
    wait = await store.read(lambda acd, now: acd.estimated_wait(Priority.NORMAL, now), 18.0)
    assert wait == pytest.approx(2 * 180.0)  # c1 and a newcomer ahead of one busy agent


async def test_what_redis_holds_is_the_model_after_every_kind_of_change(
    redis: tuple[Redis, str],
) -> None:
    """The store writes only what each change touched: after a day's worth of every method of
    the model, what Redis holds is exactly the model's whole state."""
    client, prefix = redis
    store = RedisQueueStore(client, prefix, AcdConfig(max_misses=1, wrap_up_seconds=3))
    other = RedisQueueStore(Redis.from_url(REDIS_URL), prefix, store.config)  # a second node

    async def check(node: RedisQueueStore) -> None:
        model = await node.read(lambda acd, now: dump(acd), 0.0)
        held = await node.stored()
        assert held["agents"] == model["agents"]
        assert held["waiting"] == model["waiting"]
        assert held["connected"] == {k: list(v) for k, v in model["connected"].items()}

    steps: list[tuple[RedisQueueStore, Change]] = [
        (store, lambda acd, now: acd.command("a1", Login("8001", {"utility:water": 5}), now)),
        (other, lambda acd, now: acd.command("a2", Login("8002"), now)),
        (store, lambda acd, now: acd.enter("c1", now, skills=["utility:water"])),
        (other, lambda acd, now: acd.enter("c2", now, ticket="T1")),
        (store, lambda acd, now: acd.dispatch(now)),
        (other, lambda acd, now: acd.expire(now + 20)),  # both ring out: misses, pauses
        (store, lambda acd, now: acd.command("a1", Unpause(), now)),
        (store, lambda acd, now: acd.command("a2", Unpause(), now)),
        (other, lambda acd, now: acd.dispatch(now)),
        (store, lambda acd, now: acd.answered("c1", "a1", now)),
        (other, lambda acd, now: acd.command("a1", PauseAfterCall("lunch"), now)),
        (store, lambda acd, now: acd.abandon("c2", now)),
        (other, lambda acd, now: acd.enter("c3", now)),
        (store, lambda acd, now: acd.ended("c1", now + 40, by="agent")),  # handle time moves
        (other, lambda acd, now: acd.tick(now + 50)),  # wrap-up over: the deferred pause
        (store, lambda acd, now: acd.overflow("c3", now)),
        (other, lambda acd, now: acd.enter("c4", now)),
        (store, lambda acd, now: acd.reconcile(set(), now)),
        (other, lambda acd, now: acd.command("a2", Logout(), now)),
    ]
    try:
        for n, (node, change) in enumerate(steps):
            await node.apply(change, 100.0 + n)
            await check(store)
            await check(other)
        held = await store.stored()
        assert held["handle_time"] != CONFIG.default_handle_time  # the figure was written
        assert store.reloads > 1 and other.reloads > 1  # each saw the other's changes
    finally:
        await other.redis.aclose()


async def test_a_node_whose_beat_stops_is_no_longer_alive(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    beats = AppBeats(client, prefix, ttl=0.3)
    await beats.beat("hotline-n1")
    await beats.beat("hotline-n2")
    assert await beats.alive() == {"hotline-n1", "hotline-n2"}
    await asyncio.sleep(0.2)
    await beats.beat("hotline-n2")  # n1 stopped beating
    await asyncio.sleep(0.2)
    assert await beats.alive() == {"hotline-n2"}
