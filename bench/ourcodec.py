"""This codec end to end on a recorded clip, as the rate–quality benchmark runs it.

Sender: the first frame becomes the key frame (`codec.keyframe`), every frame becomes motion
features (`models.MotionExtractor`) coded into one packet (`codec.MotionEncoder` at a rate
level). Receiver: packets are decoded (`codec.MotionDecoder`) and rendered from the decoded key
frame (`models.Renderer`, no style: plain reconstruction). The rate counts the key frame and
every payload; packet headers (sequence number, capture time, CRC: the role RTP headers play
for x264/x265, which the anchors' rate leaves out too) are reported apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CodedClip:
    """What one clip cost at one rate level and what the receiver rendered from it."""

    level: int
    keyframe_quality: int
    keyframe_bytes: int
    payload_bytes: int
    header_bytes: int
    rendered: np.ndarray  # N x S x S x 3 uint8 RGB

    @property
    def media_bytes(self) -> int:
        return self.keyframe_bytes + self.payload_bytes


class OfflineCodec:
    """Extractor and renderer of one preset, shared across the rate levels of a clip."""

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
        self, frames: np.ndarray, features: np.ndarray, level: int, keyframe_quality: int
    ) -> CodedClip:
        """Send ``frames`` (features given) at rate ``level``; render what the receiver gets."""
        from codec import MotionDecoder, MotionEncoder, motion_schema
        from codec.keyframe import decode_keyframe, encode_keyframe
        from models.frames import resize_frame

        config = self.extractor.config
        schema = motion_schema(num_kp=config.num_kp, jacobians=config.estimate_jacobian)
        keyframe = encode_keyframe(frames[0], quality=keyframe_quality)
        self.renderer.set_reference(decode_keyframe(keyframe))
        encoder = MotionEncoder(schema=schema, level=level, fps=25.0)
        decoder = MotionDecoder(schema=schema)
        rendered = []
        for index, vector in enumerate(features):
            decoded = decoder.decode(encoder.encode(vector, capture_time_ms=index * 40))
            if decoded is None:
                raise RuntimeError(f"decoder dropped lossless packet {index}: {decoder.stats}")
            # Compare at the clip's size when it differs from the preset's.
            rendered.append(resize_frame(self.renderer.render(decoded.features), len(frames[0])))
        stats = encoder.stats
        return CodedClip(
            level=level,
            keyframe_quality=keyframe_quality,
            keyframe_bytes=len(keyframe),
            payload_bytes=stats.payload_bytes,
            header_bytes=stats.header_bytes,
            rendered=np.stack(rendered),
        )

    def close(self) -> None:
        """Stop the renderer's style threads."""
        self.renderer.close()
