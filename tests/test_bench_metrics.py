"""Frame quality metrics: known values, the MS-SSIM window rule and refused input."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import (
    MEAN,
    PSNR_CAP_DB,
    RatePoint,
    mean_points,
    ms_ssim,
    ms_ssim_window,
    psnr,
    rate_point,
    ssim,
    video_metrics,
)
from tests.bench_clip import moving_shapes


def test_psnr_of_a_known_error() -> None:
    reference = np.full((2, 8, 8, 3), 100, np.uint8)
    test = reference + np.uint8(5)  # MSE 25 -> 10 log10(255^2 / 25)
    assert psnr(reference, test) == pytest.approx([34.1514, 34.1514], abs=1e-4)
    assert psnr(reference, reference)[0] == PSNR_CAP_DB


@pytest.mark.parametrize(("side", "window"), [(256, 11), (161, 11), (160, 9), (128, 7), (64, 3)])
def test_ms_ssim_window_shrinks_below_161_px(side: int, window: int) -> None:
    assert ms_ssim_window(side) == window


def test_ms_ssim_window_refuses_frames_too_small() -> None:
    with pytest.raises(ValueError, match="too small for MS-SSIM"):
        ms_ssim_window(32)


def test_ms_ssim_upsamples_frames_below_33_px() -> None:
    frames = moving_shapes(frames=2, size=32)
    upsampled = np.stack([np.repeat(np.repeat(f, 2, axis=0), 2, axis=1) for f in frames])
    shifted = np.roll(frames, 2, axis=2)
    assert ms_ssim(frames, frames) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert np.all(ms_ssim(frames, shifted) < 0.95)
    # bilinear 2x upsampling of both sides: close to scoring nearest-upsampled 64 px frames
    far = np.stack([np.repeat(np.repeat(f, 2, axis=0), 2, axis=1) for f in shifted])
    assert ms_ssim(frames, shifted) == pytest.approx(ms_ssim(upsampled, far), abs=0.05)


@pytest.mark.parametrize("side", [64, 128, 192])
def test_identical_frames_score_one_and_noise_scores_lower(side: int) -> None:
    frames = np.stack([np.resize(f, (side, side, 3)) for f in moving_shapes(frames=2, size=64)])
    noisy = np.clip(frames + np.random.default_rng(1).normal(0, 25, frames.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    assert ssim(frames, frames) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert ms_ssim(frames, frames) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert np.all(ms_ssim(frames, noisy) < 0.99)
    assert np.all(ssim(frames, noisy) < ms_ssim(frames, noisy))


def test_video_metrics_average_over_frames_and_rank_degradation() -> None:
    frames = moving_shapes(frames=6, size=64)
    shifted = np.roll(frames, 1, axis=2)
    far = np.roll(frames, 4, axis=2)
    close, distant = video_metrics(frames, shifted), video_metrics(frames, far)
    assert set(close) == {"psnr", "ssim", "ms_ssim"}
    assert all(close[name] > distant[name] for name in close)
    assert video_metrics(frames, frames, batch=4)["psnr"] == PSNR_CAP_DB


def test_rate_point_scores_what_was_shown() -> None:
    frames = moving_shapes(frames=4, size=64)
    shifted = np.roll(frames, 1, axis=2)
    point = rate_point("shapes", "x265", "qp=51", 2.5, frames, shifted)
    assert point == RatePoint("shapes", "x265", "qp=51", 2.5, **video_metrics(frames, shifted))
    assert point.quality("ssim") == point.ssim < 1.0


def test_mean_points_weigh_clips_equally_and_keep_missing_rates() -> None:
    points = [
        RatePoint("a", "x265", "qp=51", 2.0, 30.0, 0.6, 0.8),
        RatePoint("b", "x265", "qp=51", 4.0, 20.0, 0.8, 0.9),
        RatePoint("a", "zero-motion", "-", None, 28.0, 0.9, 0.95),
        RatePoint("b", "zero-motion", "-", None, 26.0, 0.7, 0.85),
        RatePoint("a", "x265", "qp=30", 9.0, 40.0, 0.9, 0.99),  # clip b lacks it: not averaged
    ]
    means = mean_points(points)
    assert [(p.clip, p.codec, p.setting, p.kbps, p.psnr) for p in means] == [
        (MEAN, "x265", "qp=51", 3.0, 25.0),
        (MEAN, "zero-motion", "-", None, 27.0),
    ]
    assert [v for p in means for v in (p.ssim, p.ms_ssim)] == pytest.approx([0.7, 0.85, 0.8, 0.9])


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="frame shapes differ"):
        psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


def test_float_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        ssim(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 3)))


def test_grey_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        video_metrics(np.zeros((2, 16, 16), np.uint8), np.zeros((2, 16, 16), np.uint8))
