from __future__ import annotations

from bench.timing import Timing, time_calls


def test_timing_statistics() -> None:
    timing = Timing.of([1.0, 2.0, 3.0, 4.0])
    assert (timing.calls, timing.mean_ms, timing.p50_ms) == (4, 2.5, 2.5)
    assert timing.fps == 400.0


def test_time_calls_runs_the_warmup_untimed() -> None:
    seen: list[int] = []
    timing = time_calls(seen.append, [1, 2, 3, 4], warmup=2)
    assert seen == [1, 2, 1, 2, 3, 4]
    assert timing.calls == 4
