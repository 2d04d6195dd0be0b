"""The bearer-token authenticator: the throttle per source, the cache, and maps that stay
bounded without forgetting every throttle at once."""

from __future__ import annotations

from typing import Any

import pytest

from hotline import web as edge
from hotline.errors import Throttled, Unauthorized
from hotline.ticketing.model import Actor, Role
from hotline.ticketing.users import User


class Request:
    def __init__(self, token: str, remote: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.remote = remote


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def authenticator(clock: Clock) -> tuple[edge.Authenticator, list[str]]:
    looked: list[str] = []
    good = User(Actor("u1", Role.SUPERVISOR), "班长", False)  # type: ignore[call-arg]

    async def lookup(token: str) -> User | None:
        looked.append(token)
        return good if token == "good-token" else None

    return edge.Authenticator(lookup, failures=3, window=60, monotonic=clock), looked


async def test_a_recently_checked_token_is_served_from_a_throttled_source() -> None:
    clock = Clock()
    auth, looked = authenticator(clock)
    await auth.user(Request("good-token", "10.0.0.1"))  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await auth.user(Request("guess", "10.0.0.9"))  # type: ignore[arg-type]
    with pytest.raises(Throttled):
        await auth.user(Request("guess", "10.0.0.9"))  # type: ignore[arg-type]
    user = await auth.user(Request("good-token", "10.0.0.9"))  # type: ignore[arg-type]
    assert user.actor.user_id == "u1" and looked.count("good-token") == 1  # from the cache
    clock.now = 31  # the cache's 30 s are over: a lookup again, which the throttle refuses
    with pytest.raises(Throttled):
        await auth.user(Request("good-token", "10.0.0.9"))  # type: ignore[arg-type]
    clock.now = 61  # the window is over
    assert (await auth.user(Request("good-token", "10.0.0.9"))).actor.user_id == "u1"  # type: ignore[arg-type]


async def test_the_failure_map_drops_expired_and_oldest_entries_not_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge, "MAX_ENTRIES", 5)
    clock = Clock()
    auth, _ = authenticator(clock)
    for _ in range(3):  # the guesser is throttled
        with pytest.raises(Unauthorized):
            await auth.user(Request("guess", "10.0.0.9"))  # type: ignore[arg-type]
    clock.now = 1
    for n in range(10):  # a spray from many addresses
        with pytest.raises(Unauthorized):
            await auth.user(Request("guess", f"10.1.0.{n}"))  # type: ignore[arg-type]
    failed: dict[str, Any] = auth._failed
    assert len(failed) <= 5
    assert "10.1.0.9" in failed  # the newest are kept ...
    assert failed["10.0.0.9"][1] == 3  # ... and the throttled source stays throttled
    with pytest.raises(Throttled):
        await auth.user(Request("guess", "10.0.0.9"))  # type: ignore[arg-type]
