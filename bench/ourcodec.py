"""Quality through this codec, with its baselines: the one definition every report uses.

`cartooncodec eval` and `cartooncodec bench rd` both call :func:`measure_clip`. Per clip:

* **ours**: the sender codes the first frame as the key frame (`codec.keyframe` at a quality)
  and every frame, the first included, as motion features (`models.MotionExtractor`) in one
  packet (`codec.MotionEncoder` at a rate level or target). The receiver decodes the packets
  (`codec.MotionDecoder`) and renders every frame from the *decoded* key frame, as in a call
  (`models.Renderer`, no style). Rate: the key frame as sent (its chunks, headers included)
  plus every motion packet (headers included), over the clip's duration at ``fps``.
* **static**: the decoded key frame shown for every frame (no motion); rate: the key frame.
* **zero-motion**: each frame rendered with itself, uncoded, as the reference and its own
  uncoded features: how sharp the generator is when nothing moves (nothing sent: no rate).
* **x265-lowest**: x265 at its lowest rate (QP 51) in the call settings of `bench.conventional`.

Quality: the mean over frames of `bench.metrics` (PSNR, SSIM, MS-SSIM) against the real frames,
at the clip's size (rendered frames are resized to it when the preset's size differs).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.conventional import FPS, LOWEST_RATE_QP, kbps, measure_conventional
from bench.metrics import RatePoint, rate_point
from codec.keyframe import DEFAULT_QUALITY, split_chunks
from pipeline.receiver import Receiver
from pipeline.sender import Sender

OURS = "ours"
STATIC = "static"
ZERO_MOTION = "zero-motion"
X265_LOWEST = "x265-lowest"
BASELINES = (STATIC, ZERO_MOTION, X265_LOWEST)


@dataclass(frozen=True)
class Setting:
    """How the sender codes a clip: key frame quality and motion rate level (or a kbps target)."""

    level: int = 0
    keyframe_quality: int = DEFAULT_QUALITY  # what `encode` and the call send
    target_kbps: float | None = None

    @property
    def codec(self) -> str:
        """Curve name: one per key frame quality (the rate levels are its points)."""
        return f"{OURS}-kq{self.keyframe_quality}"

    @property
    def label(self) -> str:
        if self.target_kbps is None:
            return f"level={self.level}"
        return f"target={self.target_kbps:g}kbps"


@dataclass(frozen=True)
class CodedClip:
    """What one clip cost at one setting and what the receiver showed."""

    setting: Setting
    fps: float
    keyframe_bytes: int  # as sent: the key frame's chunks, chunk headers included
    payload_bytes: int
    header_bytes: int  # motion packet headers (sequence number, capture time, CRC)
    keyframe: np.ndarray  # H x W x 3 uint8 RGB: the decoded key frame, the receiver's reference
    rendered: np.ndarray  # N x H x W x 3 uint8 RGB

    def kbps(self, num_bytes: int) -> float:
        return kbps(num_bytes, len(self.rendered), self.fps)

    @property
    def sent_bytes(self) -> int:
        """Everything the sender sent: key frame and motion packets, headers included."""
        return self.keyframe_bytes + self.payload_bytes + self.header_bytes


@dataclass(frozen=True)
class ClipMeasurement:
    """One clip through this codec at each setting, and its baselines."""

    clip: str
    coded: list[CodedClip]  # one per setting, in order
    points: list[RatePoint]  # ours per setting, static per key frame quality, zero-motion, x265

    def point(self, codec: str) -> RatePoint:
        """The first point of ``codec`` (e.g. ``STATIC``, or ``Setting().codec``)."""
        return next(p for p in self.points if p.codec == codec)


class OfflineCodec:
    """Extractor and renderer of one preset, shared across the settings and clips measured."""

    def __init__(
        self, preset: str = "lite-128", checkpoint: str | os.PathLike[str] | None = None
    ) -> None:
        from models import Renderer

        self.renderer = Renderer(preset=preset, checkpoint=checkpoint)
        self.extractor = self.renderer.extractor  # same weights as a separate sender would load

    def features(self, frames: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 -> N x F float32 motion features (extracted once per clip)."""
        return np.stack([self.extractor.extract(frame) for frame in frames])

    def code(
        self, frames: np.ndarray, features: np.ndarray, setting: Setting, fps: float = FPS
    ) -> CodedClip:
        """Send ``frames`` (features given) at ``setting``; render what the receiver gets."""
        sender = Sender(
            self.extractor,
            fps=fps,
            level=setting.level,
            target_kbps=setting.target_kbps,
            keyframe_quality=setting.keyframe_quality,
        )
        receiver = Receiver(self.renderer.config, self.renderer)
        keyframe = sender.keyframe(frames[0])  # the clip's frames are face crops already
        reference = receiver.set_keyframe(keyframe)
        rendered = []
        for index, vector in enumerate(features):
            decoded = receiver.decode(sender.encode(vector, capture_ms=round(index * 1000 / fps)))
            if decoded is None:
                raise RuntimeError(
                    f"decoder dropped lossless packet {index}: {receiver.decoder.stats}"
                )
            rendered.append(self._at_size(receiver.render(decoded.features), frames))
        stats = sender.encoder.stats
        return CodedClip(
            setting=setting,
            fps=fps,
            keyframe_bytes=sum(len(chunk) for chunk in split_chunks(keyframe)),
            payload_bytes=stats.payload_bytes,
            header_bytes=stats.header_bytes,
            keyframe=reference,
            rendered=np.stack(rendered),
        )

    def zero_motion(self, frames: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Each frame rendered with itself as the reference and its own features."""
        rendered = []
        for frame, vector in zip(frames, features, strict=True):
            self.renderer.set_reference(frame)
            rendered.append(self._at_size(self.renderer.render(vector), frames))
        return np.stack(rendered)

    def close(self) -> None:
        """Stop the renderer's style threads."""
        self.renderer.close()

    @staticmethod
    def _at_size(rendered: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Compare at the clip's size when it differs from the preset's."""
        from models.frames import resize_frame

        return resize_frame(rendered, len(frames[0]))


def measure_clip(
    codec: OfflineCodec,
    clip: str,
    frames: np.ndarray,
    settings: Sequence[Setting],
    fps: float = FPS,
    x26x_preset: str = "medium",
) -> ClipMeasurement:
    """``frames`` (N x S x S x 3 uint8 RGB) through this codec and its baselines (module doc)."""
    frames = np.require(frames, requirements="W")  # torch warns on read-only (cached) frames
    features = codec.features(frames)
    coded = [codec.code(frames, features, setting, fps) for setting in settings]
    points = [
        rate_point(clip, c.setting.codec, c.setting.label, c.kbps(c.sent_bytes), frames, c.rendered)
        for c in coded
    ]
    keyframes = {c.setting.keyframe_quality: c for c in coded}
    for quality, c in keyframes.items():
        static = np.broadcast_to(c.keyframe, frames.shape)
        points.append(
            rate_point(clip, STATIC, f"kq{quality}", c.kbps(c.keyframe_bytes), frames, static)
        )
    zero_motion = codec.zero_motion(frames, features)
    points.append(rate_point(clip, ZERO_MOTION, "uncoded reference", None, frames, zero_motion))
    lowest = measure_conventional(clip, frames, "x265", LOWEST_RATE_QP, x26x_preset, fps)
    points.append(dataclasses.replace(lowest, codec=X265_LOWEST))
    return ClipMeasurement(clip, coded, points)
