"""`cartooncodec eval`: a checkpoint's quality through the real codec, with its baselines.

The measurement is `bench.ourcodec.measure_clip`, the one `bench rd` uses: every face-cropped
frame of a clip is rendered from the *coded* key frame (its first frame) and its coded motion,
as in a call; the rate counts the key frame and every packet, headers included, at the clip's
frame rate. Each clip and the mean over clips (each clip counts once) carry three baselines:
the static decoded key frame, zero-motion self-reconstruction and x265 at its lowest rate.
No style is applied: this measures motion transfer and reconstruction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from bench.conventional import FPS
from bench.metrics import RatePoint, mean_points
from bench.ourcodec import (
    BASELINES,
    OURS,
    ClipMeasurement,
    OfflineCodec,
    Setting,
    measure_clip,
)
from codec.ratecontrol import DEFAULT_TARGET_KBPS
from models.config import get_preset
from training.videos import load_clips

log = logging.getLogger(__name__)

SAMPLE_FRAMES = 6


@dataclass(frozen=True)
class ClipCost:
    """What this codec sent for one clip."""

    clip: str
    frames: int
    fps: float
    keyframe_bytes: int
    payload_kbps: float
    header_kbps: float
    kbps: float  # key frame + payload + headers


@dataclass(frozen=True)
class EvalReport:
    """Per clip, then for ``bench.metrics.MEAN``: rows ``OURS`` and ``BASELINES``, in order."""

    setting: Setting
    costs: list[ClipCost]
    points: list[RatePoint]
    preset: str
    checkpoint: str

    def row(self, clip: str, name: str) -> RatePoint:
        """One row, e.g. ``row(MEAN, OURS)`` or ``row("talk", STATIC)``."""
        return next(p for p in self.points if p.clip == clip and p.codec == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def table(self) -> str:
        """Plain text: the rows of each clip and their means, then what ours sent per clip."""
        lines = [
            f"{self.preset} ({self.checkpoint}), {self.setting.codec} {self.setting.label}",
            f"{'clip':<32} {'row':<12} {'kbps':>6} {'PSNR':>6} {'SSIM':>6} {'MS-SSIM':>7}",
        ]
        for point in self.points:
            rate = "–" if point.kbps is None else f"{point.kbps:.2f}"
            lines.append(
                f"{point.clip[:32]:<32} {point.codec:<12} {rate:>6} {point.psnr:>6.2f} "
                f"{point.ssim:>6.3f} {point.ms_ssim:>7.3f}"
            )
        lines += [
            "",
            f"{'clip':<32} {'frames':>6} {'fps':>5} {'key B':>6} {'payload':>7} "
            f"{'headers':>7} {'kbps':>6}",
        ]
        for cost in self.costs:
            lines.append(
                f"{cost.clip[:32]:<32} {cost.frames:>6} {cost.fps:>5.1f} {cost.keyframe_bytes:>6} "
                f"{cost.payload_kbps:>7.2f} {cost.header_kbps:>7.2f} {cost.kbps:>6.2f}"
            )
        return "\n".join(lines)


def evaluate(
    clips_dir: Path,
    preset: str = "lite-128",
    checkpoint: Path | None = None,
    setting: Setting | None = None,
    samples_dir: Path | None = None,
    cache_dir: Path | None = None,
    frames: int | None = None,
) -> EvalReport:
    """Rows of every usable clip in ``clips_dir`` and their means over clips, coded as a call
    codes (``setting`` defaults to a call's key frame quality and rate target); ``frames``:
    score only the first N frames of each clip."""
    if frames is not None and frames < 2:
        raise ValueError(
            f"frames must be at least 2 (a key frame and one coded frame), got {frames}"
        )
    from tqdm import tqdm

    setting = setting or Setting(target_kbps=DEFAULT_TARGET_KBPS)
    size = get_preset(preset).image_size
    clips, _ = load_clips(clips_dir, size, cache_dir)
    videos = [clip for clip in clips if len(clip) > 1]
    if not videos:
        raise ValueError(
            f"no video with a detectable face in {clips_dir} (stills cannot be scored)"
        )
    codec = OfflineCodec(preset=preset, checkpoint=checkpoint)
    costs, points = [], []
    try:
        for clip in tqdm(videos, desc="eval", unit="clip"):
            video = np.asarray(clip.frames[:frames])
            measured = measure_clip(codec, clip.name, video, [setting], fps=clip.fps or FPS)
            costs.append(_cost(measured, len(video)))
            points.append(replace(measured.point(setting.codec), codec=OURS))
            points += [p for p in measured.points if p.codec in BASELINES]
            if samples_dir is not None:
                _save_samples(samples_dir / f"{clip.name}.png", video, measured)
    finally:
        codec.close()
    return EvalReport(
        setting=setting,
        costs=costs,
        points=points + mean_points(points),
        preset=preset,
        checkpoint=str(checkpoint) if checkpoint else "default",
    )


def _cost(measured: ClipMeasurement, frames: int) -> ClipCost:
    (coded,) = measured.coded
    return ClipCost(
        clip=measured.clip,
        frames=frames,
        fps=coded.fps,
        keyframe_bytes=coded.keyframe_bytes,
        payload_kbps=coded.kbps(coded.payload_bytes),
        header_kbps=coded.kbps(coded.header_bytes),
        kbps=coded.kbps(coded.sent_bytes),
    )


def _save_samples(path: Path, real: np.ndarray, measured: ClipMeasurement) -> None:
    """Three rows of evenly spaced frames: real, static (decoded key frame), ours."""
    import cv2

    (coded,) = measured.coded
    picks = np.linspace(0, len(real) - 1, num=min(SAMPLE_FRAMES, len(real))).astype(int)
    rows = [real[picks], np.broadcast_to(coded.keyframe, real[picks].shape), coded.rendered[picks]]
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
