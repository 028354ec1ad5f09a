"""Sliding-window rate meters and latency percentiles, shared by server stats and the client."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np


class RateMeter:
    """Events and bytes over the last ``window_s`` seconds, plus running totals."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self.total_events = 0
        self.total_bytes = 0

    def add(self, size: int = 0, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._events.append((now, size))
        self.total_events += 1
        self.total_bytes += size
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self.window_s:
            self._events.popleft()

    def per_second(self, now: float | None = None) -> float:
        self._expire(time.monotonic() if now is None else now)
        return len(self._events) / self.window_s

    def kbps(self, now: float | None = None) -> float:
        self._expire(time.monotonic() if now is None else now)
        return sum(size for _, size in self._events) * 8 / 1000 / self.window_s


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> list[float | None]:
    """Percentiles of ``values`` (None each when empty)."""
    if not values:
        return [None for _ in qs]
    return [float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), qs)]


class Throttle:
    """``ready()`` is True at most once every ``interval_s`` seconds (each True uses it up):
    how often a receiver may ask for the same thing, e.g. an intra frame."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last = -float("inf")

    def ready(self) -> bool:
        now = self._clock()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        return True
