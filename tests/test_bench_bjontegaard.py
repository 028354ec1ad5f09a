"""BD-rate and rate-at-quality on hand-made curves."""

from __future__ import annotations

import numpy as np
import pytest

from bench.bjontegaard import bd_rate, lowest_rate_reaching, monotone, rate_at_quality


def test_bd_rate_of_a_curve_at_half_the_rate_is_minus_fifty_percent() -> None:
    anchor = [(10.0, 30.0), (20.0, 33.0), (40.0, 36.0), (80.0, 39.0)]
    half = [(r / 2, q) for r, q in anchor]
    assert bd_rate(anchor, half) == pytest.approx(-50.0)
    assert bd_rate(anchor, anchor) == pytest.approx(0.0)
    assert rate_at_quality(anchor, 33.0) == pytest.approx(20.0)


def test_bd_rate_is_none_without_a_common_quality_range() -> None:
    assert bd_rate([(1.0, 0.1), (2.0, 0.2)], [(5.0, 0.5), (9.0, 0.6)]) is None
    assert rate_at_quality([(1.0, 0.1), (2.0, 0.2)], 0.9) is None


def test_curve_points_that_cost_more_for_less_quality_are_dropped() -> None:
    log_rates, qualities = monotone([(1.0, 0.5), (2.0, 0.4), (3.0, 0.7)])
    assert np.allclose(np.exp(log_rates), [1.0, 3.0])
    assert lowest_rate_reaching([(1.0, 0.5), (2.0, 0.4), (3.0, 0.7)], 0.45) == 1.0


def test_curve_with_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        monotone([(0.0, 0.5)])
