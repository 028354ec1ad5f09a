"""Milliseconds per call: the timing every speed comparison reports (`bench speed`,
`bench.cascade`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

WARMUP_CALLS = 3


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call over ``calls`` timed calls."""

    calls: int
    mean_ms: float
    p50_ms: float
    p95_ms: float

    @property
    def fps(self) -> float:
        return 1000.0 / self.mean_ms if self.mean_ms > 0 else float("inf")

    @classmethod
    def of(cls, milliseconds: Sequence[float]) -> Timing:
        values = np.asarray(milliseconds, dtype=np.float64)
        return cls(
            len(values),
            float(values.mean()),
            float(np.percentile(values, 50)),
            float(np.percentile(values, 95)),
        )


def time_calls(
    step: Callable[[Any], object], inputs: Sequence[Any], warmup: int = WARMUP_CALLS
) -> Timing:
    """Time ``step`` on each input after ``warmup`` untimed calls (results reach the host:
    the models return numpy arrays, so CUDA work is finished when the call returns)."""
    for item in list(inputs)[:warmup]:
        step(item)
    return Timing.of(call_times(step, inputs))


def call_times(step: Callable[[Any], object], inputs: Sequence[Any]) -> list[float]:
    """Milliseconds of ``step`` on each input, in order, nothing untimed."""
    times = []
    for item in inputs:
        start = time.perf_counter()
        step(item)
        times.append((time.perf_counter() - start) * 1000.0)
    return times
