"""Full-reference frame quality: PSNR, SSIM and MS-SSIM (pytorch-msssim) on RGB uint8 frames.

MS-SSIM keeps the standard five scales and weights (Wang et al. 2003) but pytorch-msssim refuses
frames whose smaller side is at most (win_size - 1) * 16, i.e. 160 px with the usual 11-tap
Gaussian window (its check assumes four downsamplings whatever the weights, so dropping scales
alone does not help). For smaller frames the window shrinks to the largest odd size the check
accepts: 7 taps at 128 px (the lite-128 preset), 3 taps at 64 px; frames under 33 px (the tiny
test preset) are upsampled bilinearly to 64 px first. Results at different sizes are therefore
not comparable to each other; every figure in one table uses one size.

Every report (`cartooncodec eval`, `bench rd`) scores with these functions; training losses may
define their own. A `RatePoint` is one coded version of a clip: its rate and mean quality.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

METRICS: tuple[str, ...] = ("psnr", "ssim", "ms_ssim")
PSNR_CAP_DB = 100.0  # identical frames: a finite value keeps means and plots usable
STANDARD_WINDOW = 11
MS_SSIM_DOWNSAMPLINGS = 4
MS_SSIM_MIN_SIDE = 33  # smallest side with a 3-tap window; smaller frames are upsampled
MS_SSIM_UPSAMPLED_SIDE = 64
MEAN = "mean"


@dataclass(frozen=True)
class RatePoint:
    """One version of one clip: codec, its setting, rate (None: nothing sent) and mean quality."""

    clip: str
    codec: str
    setting: str
    kbps: float | None
    psnr: float
    ssim: float
    ms_ssim: float

    def quality(self, metric: str) -> float:
        return float(getattr(self, metric))


def rate_point(
    clip: str, codec: str, setting: str, kbps: float | None, real: np.ndarray, shown: np.ndarray
) -> RatePoint:
    """The point of ``shown`` (what the receiver displays) scored against the ``real`` frames."""
    return RatePoint(clip, codec, setting, kbps, **video_metrics(real, shown))


def mean_points(points: Sequence[RatePoint]) -> list[RatePoint]:
    """Mean rate and quality over clips (each clip counts once), per codec and setting.

    Only settings every clip has are averaged; the mean points are named ``MEAN``.
    """
    groups: dict[tuple[str, str], list[RatePoint]] = defaultdict(list)
    for point in points:
        groups[(point.codec, point.setting)].append(point)
    clips = {p.clip for p in points}
    means = []
    for (codec, setting), members in groups.items():
        if {p.clip for p in members} != clips:
            continue
        rates = [p.kbps for p in members if p.kbps is not None]
        kbps = float(np.mean(rates)) if len(rates) == len(members) else None
        quality = {key: float(np.mean([p.quality(key) for p in members])) for key in METRICS}
        means.append(RatePoint(MEAN, codec, setting, kbps, **quality))
    return means


def ms_ssim_window(size: int) -> int:
    """Gaussian window (odd taps) that pytorch-msssim accepts for frames of this smaller side."""
    window = STANDARD_WINDOW
    while window > 1 and size <= (window - 1) * 2**MS_SSIM_DOWNSAMPLINGS:
        window -= 2
    if window < 3:
        raise ValueError(f"frames of {size} px are too small for MS-SSIM (need at least 33 px)")
    return window


def check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    """Refuse arrays that are not matching NxHxWx3 (or HxWx3) uint8 frames."""
    if reference.shape != test.shape:
        raise ValueError(f"frame shapes differ: reference {reference.shape}, test {test.shape}")
    if reference.dtype != np.uint8 or test.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got {reference.dtype} and {test.dtype}")
    if reference.ndim not in (3, 4) or reference.shape[-1] != 3:
        raise ValueError(f"frames must be HxWx3 or NxHxWx3 RGB, got shape {reference.shape}")


def psnr(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB of NxHxWx3 uint8 frames, capped at PSNR_CAP_DB."""
    check_pair(reference, test)
    ref = reference.reshape(-1, *reference.shape[-3:]).astype(np.float64)
    err = (ref - test.reshape(ref.shape).astype(np.float64)) ** 2
    mse = err.reshape(len(ref), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(values, PSNR_CAP_DB)


def ssim(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Per-frame SSIM (11-tap Gaussian window, averaged over RGB) of NxHxWx3 uint8 frames."""
    from pytorch_msssim import ssim as _ssim

    check_pair(reference, test)
    x, y = _to_tensor(reference), _to_tensor(test)
    return _ssim(x, y, data_range=255.0, size_average=False).numpy().astype(np.float64)


def ms_ssim(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Per-frame MS-SSIM of NxHxWx3 uint8 frames; window and small frames: see the module doc."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    check_pair(reference, test)
    x, y = _to_tensor(reference), _to_tensor(test)
    side = min(x.shape[-2:])
    if side < MS_SSIM_MIN_SIDE:
        import torch.nn.functional as F

        scale = MS_SSIM_UPSAMPLED_SIDE / side
        x, y = (F.interpolate(t, scale_factor=scale, mode="bilinear") for t in (x, y))
    window = ms_ssim_window(min(x.shape[-2:]))
    values = _ms_ssim(x, y, data_range=255.0, size_average=False, win_size=window)
    return values.numpy().astype(np.float64)


def video_metrics(
    reference: Sequence[np.ndarray] | np.ndarray,
    test: Sequence[np.ndarray] | np.ndarray,
    batch: int = 32,
) -> dict[str, float]:
    """Mean over frames of every metric in METRICS (frames given as HxWx3 uint8 RGB)."""
    ref, out = np.asarray(reference), np.asarray(test)
    check_pair(ref, out)
    if ref.ndim != 4 or len(ref) == 0:
        raise ValueError(f"expected a non-empty NxHxWx3 sequence of frames, got shape {ref.shape}")
    per_frame: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for start in range(0, len(ref), batch):
        a, b = ref[start : start + batch], out[start : start + batch]
        per_frame["psnr"].append(psnr(a, b))
        per_frame["ssim"].append(ssim(a, b))
        per_frame["ms_ssim"].append(ms_ssim(a, b))
    return {name: float(np.concatenate(values).mean()) for name, values in per_frame.items()}


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """HxWx3 or NxHxWx3 uint8 -> Nx3xHxW float in [0, 255]."""
    import torch

    batch = frames.reshape(-1, *frames.shape[-3:])
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
