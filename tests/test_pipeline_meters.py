from __future__ import annotations

import pytest

from pipeline.meters import RateMeter, Throttle, percentiles


def test_rates_cover_only_the_window() -> None:
    meter = RateMeter(window_s=2.0)
    for i in range(10):
        meter.add(100, now=float(i) * 0.5)  # 0.0 .. 4.5 s
    # events at 2.5 .. 4.5 s are inside the window ending at 4.5 s
    assert meter.per_second(now=4.5) == pytest.approx(5 / 2.0)
    assert meter.kbps(now=4.5) == pytest.approx(5 * 100 * 8 / 1000 / 2.0)
    assert (meter.total_events, meter.total_bytes) == (10, 1000)


def test_percentiles() -> None:
    assert percentiles([]) == [None, None, None]
    assert percentiles(list(range(101)), (50, 95)) == [50.0, 95.0]


def test_a_throttle_is_ready_at_most_once_an_interval() -> None:
    now = [100.0]
    throttle = Throttle(0.25, clock=lambda: now[0])
    seen = []
    for step in range(8):  # every 0.1 s: ready at 100.0, 100.3, 100.6
        now[0] = 100.0 + 0.1 * step
        seen.append(throttle.ready())
    assert seen == [True, False, False, True, False, False, True, False]
