"""When to call a citizen back for satisfaction (rules B-1 … B-3), pure: the calling window and
the next attempt (issue 14, first step: the campaign's policy, before the calls).

Theory of operation. A callback is due inside B-1's deadline and only inside the calling window
(default 09:00–20:00 city time, on the days a city allows; never at night). After an attempt the
next one waits a spacing that depends on its outcome (a busy line is tried again sooner than
one that did not answer) and is moved into the window; when the attempts are spent, or the next
one would not end before the deadline, there is none: the citizen is sent a self-evaluation
code through the original channel instead — early enough to be answered in time, rather than a
call that would miss the deadline.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field

DAY = dt.timedelta(days=1)
OUTCOMES = ("busy", "no_answer", "rejected", "hung_up", "no_key", "failed")


@dataclass(frozen=True, slots=True)
class CallWindow:
    """The hours a citizen may be called, city time; ``days``: ISO weekdays (1 = Monday)."""

    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(20, 0)
    days: frozenset[int] = frozenset(range(1, 8))
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("the calling window starts before it ends, on one day")
        if not self.days or not self.days <= set(range(1, 8)):
            raise ValueError("the calling window's days are ISO weekdays 1-7, one at least")

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def opens_at_or_after(self, at: dt.datetime) -> dt.datetime:
        """``at`` if it lies inside the window, else the window's next opening."""
        local = at.astimezone(self.tz)
        for n in range(8):
            day = local.date() + DAY * n
            if day.isoweekday() not in self.days:
                continue
            begin = dt.datetime.combine(day, self.start, self.tz)
            end = dt.datetime.combine(day, self.end, self.tz)
            if n == 0 and begin <= local < end:
                return at
            if local < begin:
                return begin
        raise AssertionError("unreachable: a week holds one allowed day")  # pragma: no cover

    def closes_after(self, at: dt.datetime) -> dt.datetime:
        """The end of the window ``at`` lies in."""
        local = at.astimezone(self.tz)
        return dt.datetime.combine(local.date(), self.end, self.tz)


@dataclass(frozen=True, slots=True)
class Campaign:
    """How many calls, how far apart by outcome, how long a call may take."""

    window: CallWindow = field(default_factory=CallWindow)
    attempts: int = 3
    spacing: Mapping[str, dt.timedelta] = field(
        default_factory=lambda: {
            "busy": dt.timedelta(minutes=10),
            "no_answer": dt.timedelta(hours=1),
            "hung_up": dt.timedelta(hours=1),
            "no_key": dt.timedelta(hours=2),
            "rejected": dt.timedelta(hours=2),
            "failed": dt.timedelta(minutes=30),
        }
    )
    call_time: dt.timedelta = dt.timedelta(minutes=3)  # a survey call, ringing included
    # the least time a self-evaluation code is given before the deadline: no call is placed
    # that would leave less after it (the calls failing, the code still has this long)
    evaluation_time: dt.timedelta = dt.timedelta(hours=4)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a campaign calls once at least")
        missing = sorted(set(OUTCOMES) - set(self.spacing))
        if missing:
            raise ValueError(f"no spacing for {', '.join(missing)}")


def first_call(campaign: Campaign, ready: dt.datetime, deadline: dt.datetime) -> dt.datetime | None:
    """When to place the first call for a ticket whose callback is due from ``ready`` (the
    office has the replies) by ``deadline`` (B-1); None: self-evaluation from the start."""
    return _fit(campaign, ready, deadline)


def next_call(
    campaign: Campaign,
    outcomes: list[str],
    last: dt.datetime,
    deadline: dt.datetime,
) -> dt.datetime | None:
    """After the attempts so far (their outcomes, the last placed at ``last``): the next
    call's time, or None — the attempts are spent or the next would not end before the
    deadline: self-evaluation now."""
    if not outcomes or len(outcomes) >= campaign.attempts:
        return None
    outcome = outcomes[-1]
    if outcome not in campaign.spacing:
        raise ValueError(f"{outcome!r} is not a callback outcome")
    return _fit(campaign, last + campaign.spacing[outcome], deadline)


def _fit(campaign: Campaign, earliest: dt.datetime, deadline: dt.datetime) -> dt.datetime | None:
    at = campaign.window.opens_at_or_after(earliest)
    if at + campaign.call_time > campaign.window.closes_after(at):  # no room left today
        at = campaign.window.opens_at_or_after(campaign.window.closes_after(at))
    if at + campaign.call_time > deadline - campaign.evaluation_time:
        return None
    return at


def callable_now(campaign: Campaign, now: dt.datetime, deadline: dt.datetime) -> bool:
    """Whether a call due before ``now`` may still be placed now: inside the window with room
    for the call, and leaving the code its time before the deadline (a backlog after a
    full cap or an outage is never called at night, nor late)."""
    return in_window(campaign, now) and now + campaign.call_time <= (
        deadline - campaign.evaluation_time
    )


def in_window(campaign: Campaign, now: dt.datetime) -> bool:
    """Whether a call may start now: inside the calling window, with room for it."""
    window = campaign.window
    return window.opens_at_or_after(now) == now and (
        now + campaign.call_time <= window.closes_after(now)
    )
