"""Comparing rate–quality curves: Bjøntegaard delta rate and the rate needed for a quality.

Curves are lists of (kbps, quality) points. Log-rate is interpolated over quality with a
piecewise cubic Hermite (PCHIP) as in current JVET/AOM practice (the original cubic fit
overshoots with few points); only the quality range both curves cover is compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Curve = Sequence[tuple[float, float]]


def monotone(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """(log kbps, quality) sorted by quality, keeping only points that raise the quality
    reached at a lower rate (a point that costs more for no gain is not on the curve)."""
    kept: list[tuple[float, float]] = []
    for rate, quality in sorted(curve):
        if rate <= 0 or not math.isfinite(quality):
            raise ValueError(
                f"curve point needs a positive rate and finite quality: {rate, quality}"
            )
        if not kept or quality > kept[-1][1]:
            kept.append((rate, quality))
    log_rates = np.log(np.array([r for r, _ in kept]))
    return log_rates, np.array([q for _, q in kept])


def bd_rate(anchor: Curve, test: Curve) -> float | None:
    """Mean rate change (%) of ``test`` against ``anchor`` at equal quality: -50 = half the
    bits. None when the curves share no quality range or either has fewer than two points."""
    from scipy.interpolate import PchipInterpolator

    a_rate, a_quality = monotone(anchor)
    t_rate, t_quality = monotone(test)
    if len(a_quality) < 2 or len(t_quality) < 2:
        return None
    low, high = max(a_quality[0], t_quality[0]), min(a_quality[-1], t_quality[-1])
    if high <= low:
        return None
    a_area = PchipInterpolator(a_quality, a_rate).integrate(low, high)
    t_area = PchipInterpolator(t_quality, t_rate).integrate(low, high)
    return float((math.exp((t_area - a_area) / (high - low)) - 1.0) * 100.0)


def rate_at_quality(curve: Curve, quality: float) -> float | None:
    """kbps the curve needs to reach ``quality`` (interpolated), None outside its range."""
    from scipy.interpolate import PchipInterpolator

    log_rates, qualities = monotone(curve)
    if not qualities[0] <= quality <= qualities[-1]:
        return None
    if len(qualities) == 1:
        return float(math.exp(log_rates[0]))
    return float(math.exp(PchipInterpolator(qualities, log_rates)(quality)))


def lowest_rate_reaching(curve: Curve, quality: float) -> float | None:
    """The lowest measured rate whose quality is at least ``quality``; None if none reaches it."""
    rates = [rate for rate, q in curve if q >= quality]
    return min(rates) if rates else None
