"""Frame quality metrics: known values, the MS-SSIM window rule and refused input."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import (
    PSNR_CAP_DB,
    ms_ssim,
    ms_ssim_window,
    psnr,
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


def test_ms_ssim_refuses_frames_too_small() -> None:
    with pytest.raises(ValueError, match="too small for MS-SSIM"):
        ms_ssim_window(32)


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


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="frame shapes differ"):
        psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


def test_float_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        ssim(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 3)))


def test_grey_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        video_metrics(np.zeros((2, 16, 16), np.uint8), np.zeros((2, 16, 16), np.uint8))
