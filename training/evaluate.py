"""Same-identity reconstruction through the real codec: the quality figure of a checkpoint.

For each clip, the first face-cropped frame is the receiver's reference; every later frame is
reduced to motion features by the sender's extractor, coded by :class:`codec.MotionEncoder`,
decoded by :class:`codec.MotionDecoder` and rendered by the receiver's generator. The rendered
frames are compared with the real ones (PSNR, SSIM, MS-SSIM) and the packets give the motion
bit rate. No style is applied: this measures motion transfer and reconstruction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from training.videos import Clip, load_clips

if TYPE_CHECKING:
    from models.renderer import Renderer

log = logging.getLogger(__name__)

SAMPLE_FRAMES = 6


@dataclass(frozen=True)
class ClipScore:
    """Mean quality of one clip's rendered frames and the motion stream that drove them."""

    clip: str
    frames: int
    psnr: float
    ssim: float
    ms_ssim: float
    kbps: float
    payload_kbps: float


@dataclass(frozen=True)
class EvalReport:
    clips: list[ClipScore]
    psnr: float
    ssim: float
    ms_ssim: float
    kbps: float
    preset: str
    checkpoint: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def table(self) -> str:
        """Plain-text table: one line per clip and the overall mean (frame-weighted)."""
        header = f"{'clip':<32} {'frames':>6} {'PSNR':>7} {'SSIM':>6} {'MS-SSIM':>7} {'kbps':>6}"
        lines = [header]
        for s in self.clips:
            lines.append(
                f"{s.clip[:32]:<32} {s.frames:>6} {s.psnr:>7.2f} {s.ssim:>6.3f} "
                f"{s.ms_ssim:>7.3f} {s.kbps:>6.2f}"
            )
        total = sum(s.frames for s in self.clips)
        lines.append(
            f"{'overall':<32} {total:>6} {self.psnr:>7.2f} {self.ssim:>6.3f} "
            f"{self.ms_ssim:>7.3f} {self.kbps:>6.2f}"
        )
        return "\n".join(lines)


def frame_scores(rendered: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """(PSNR dB, SSIM, MS-SSIM) of two HxWx3 uint8 RGB frames, as the benchmarks define them."""
    from bench.metrics import psnr, ssim
    from training.losses import ms_ssim_value  # also scores frames below bench's 33 px minimum

    as_tensor = [
        torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 for x in (rendered, target)
    ]
    return (
        float(psnr(target, rendered)[0]),
        float(ssim(target, rendered)[0]),
        float(ms_ssim_value(*as_tensor)),
    )


def evaluate_clip(
    clip: Clip, renderer: Renderer, target_kbps: float | None, samples_dir: Path | None
) -> ClipScore:
    """Reconstruct ``clip`` from its first frame and coded motion; see the module docstring.

    The sender's extractor is ``renderer.extractor``: the same weights a call would use.
    """
    from codec import MotionDecoder, MotionEncoder, motion_schema

    fps = clip.fps or 25.0
    extractor = renderer.extractor
    encoder = MotionEncoder(schema=motion_schema(), target_kbps=target_kbps, fps=fps)
    decoder = MotionDecoder(schema=motion_schema())
    frames = np.asarray(clip.frames)
    renderer.set_reference(frames[0])
    scores, rendered_frames = [], []
    for index in range(1, len(frames)):
        packet = encoder.encode(extractor.extract(frames[index]), int(index * 1000 / fps))
        decoded = decoder.decode(packet)
        if decoded is None:
            raise RuntimeError(f"{clip.name}: the decoder dropped packet {index} ({decoder.stats})")
        rendered = renderer.render(decoded.features)
        scores.append(frame_scores(rendered, frames[index]))
        rendered_frames.append(rendered)
    if samples_dir is not None:
        _save_samples(samples_dir / f"{clip.name}.png", frames[1:], rendered_frames)
    psnr, ssim, ms_ssim = (float(v) for v in np.mean(scores, axis=0))
    stats = encoder.stats
    return ClipScore(
        clip=clip.name,
        frames=len(scores),
        psnr=psnr,
        ssim=ssim,
        ms_ssim=ms_ssim,
        kbps=stats.total_kbps,
        payload_kbps=stats.payload_kbps,
    )


def _save_samples(path: Path, real: np.ndarray, rendered: list[np.ndarray]) -> None:
    """Two rows of evenly spaced frames: real on top, rendered from coded motion below."""
    import cv2

    picks = np.linspace(0, len(rendered) - 1, num=min(SAMPLE_FRAMES, len(rendered))).astype(int)
    top = np.concatenate([real[i] for i in picks], axis=1)
    bottom = np.concatenate([rendered[i] for i in picks], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([top, bottom], axis=0), cv2.COLOR_RGB2BGR))


def evaluate(
    clips_dir: Path,
    preset: str = "lite-128",
    checkpoint: Path | None = None,
    target_kbps: float | None = None,
    samples_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> EvalReport:
    """Scores of every usable clip in ``clips_dir`` and their frame-weighted means."""
    from tqdm import tqdm

    from models.config import get_preset

    size = get_preset(preset).image_size
    clips, _ = load_clips(clips_dir, size, cache_dir)
    videos = [clip for clip in clips if len(clip) > 1]
    if not videos:
        raise ValueError(
            f"no video with a detectable face in {clips_dir} (stills cannot be scored)"
        )
    from models import Renderer

    renderer = Renderer(preset=preset, checkpoint=checkpoint)
    try:
        scores = [
            evaluate_clip(clip, renderer, target_kbps, samples_dir)
            for clip in tqdm(videos, desc="eval", unit="clip")
        ]
    finally:
        renderer.close()
    weights = np.array([s.frames for s in scores], dtype=np.float64)

    def mean(values: list[float]) -> float:
        return float(np.average(values, weights=weights))

    return EvalReport(
        clips=scores,
        psnr=mean([s.psnr for s in scores]),
        ssim=mean([s.ssim for s in scores]),
        ms_ssim=mean([s.ms_ssim for s in scores]),
        kbps=mean([s.kbps for s in scores]),
        preset=preset,
        checkpoint=str(checkpoint) if checkpoint else "default",
    )
