"""Cron alignment (pure): when ``minutely``, ``hourly`` and ``daily`` fire (contract 2.6).

A cron trigger fires at second 0 of each UTC minute, hour or day. The next firing is always
recomputed from the wall clock as the next multiple of the period (POSIX time has no leap seconds,
so a UTC day is exactly 86,400 s), never by adding a period to the previous firing: a late wake-up,
a slow firing or a suspended machine cannot make it drift.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Mapping
from typing import Any

from kzconsole.plugin import CRON_TRIGGERS

__all__ = ["PERIODS", "PASS", "FIRE_NAMES", "seconds_until", "boundary_at", "next_boundary"]

PERIODS: Mapping[str, int] = {"minutely": 60, "hourly": 3600, "daily": 86400}
PASS = "databases"  # the trigger name of a database pass in the history and the command line
FIRE_NAMES = CRON_TRIGGERS + (PASS,)


def _hms(now: Any) -> tuple[int, int, int]:
    """UTC (hour, minute, second) in whole seconds, sub-seconds dropped as the original does."""
    if isinstance(now, tuple):
        hour, minute, second = now
        return int(hour), int(minute), int(second)
    if isinstance(now, _dt.datetime):
        if now.tzinfo is not None:
            now = now.astimezone(_dt.UTC)
        return now.hour, now.minute, now.second
    if isinstance(now, _dt.time):
        return now.hour, now.minute, now.second
    t = time.gmtime(math.floor(now))
    return t.tm_hour, t.tm_min, t.tm_sec


def seconds_until(trigger: str, now: Any) -> int:
    """Whole seconds from ``now`` to the next firing of a cron trigger (the original's timers,
    kazoo-original.md 7.2; its test vectors are 12.2). ``now`` is Unix seconds, a datetime (naive
    means UTC), a time of day, or an ``(hour, minute, second)`` tuple (second 60 is a leap second).
    At a boundary the answer is a full period: that firing is the one being made now."""
    hour, minute, second = _hms(now)
    if trigger == "minutely":
        return 60 - second
    if trigger == "hourly":
        return (60 - minute) * 60 - second
    if trigger == "daily":
        return (24 - hour) * 3600 - minute * 60 - second
    raise ValueError(f"{trigger!r} is not a cron trigger (use one of {', '.join(CRON_TRIGGERS)})")


def boundary_at(trigger: str, now: float) -> float:
    """The latest boundary of ``trigger`` at or before ``now`` (Unix seconds)."""
    period = PERIODS[trigger]
    return float(math.floor(now / period) * period)


def next_boundary(trigger: str, now: float) -> float:
    """The first boundary of ``trigger`` strictly after ``now`` (Unix seconds)."""
    return boundary_at(trigger, now) + PERIODS[trigger]
