"""The sending side, frame by frame: face crop -> motion features -> packet.

A Sender is built from one motion extractor: its model config gives the crop size and the motion
schema (``codec.model_schema``); the Sender owns the face tracker (``models.face_crop``) and the
``MotionEncoder``. It holds nothing beyond the current frame, so a live call (frames as they are
captured) and ``encode`` (the frames of a file) drive it alike; moving the packets is the
caller's job (a data channel, a .ccv file, or a Receiver in the same process).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from codec.keyframe import DEFAULT_QUALITY, encode_keyframe
from codec.motionencoder import MotionEncoder
from codec.ratecontrol import DEFAULT_TARGET_KBPS
from codec.schema import model_schema
from models.config import ModelConfig
from models.face_crop import LIVE_DETECT_EVERY, FaceTracker


class Extractor(Protocol):
    """What a Sender needs from ``models.MotionExtractor``."""

    @property
    def size(self) -> int: ...

    @property
    def config(self) -> ModelConfig: ...

    def extract(self, frame: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SentFrame:
    face: np.ndarray  # size x size x 3 uint8 RGB: the crop the features were extracted from
    features: np.ndarray  # (schema.size,) float32, as extracted (before quantization)
    packet: bytes


class Sender:
    """Codes one participant's frames. ``detect_every``: see ``FaceTracker`` (1 for a file:
    every frame cut with its own detection; the call detects every 10th on a thread). The
    encoder settings are ``MotionEncoder``'s; ``keyframe_quality`` is the reference's."""

    def __init__(
        self,
        extractor: Extractor,
        *,
        fps: float = 25.0,
        level: int = 0,
        target_kbps: float | None = DEFAULT_TARGET_KBPS,
        intra_period: int = 25,
        feedback: bool = False,
        keyframe_quality: int = DEFAULT_QUALITY,
        detect_every: int = LIVE_DETECT_EVERY,
    ) -> None:
        self.extractor = extractor
        self.schema = model_schema(extractor.config)
        self.encoder = MotionEncoder(
            self.schema,
            target_kbps=target_kbps,
            intra_period=intra_period,
            fps=fps,
            level=level,
            feedback=feedback,
        )
        self.keyframe_quality = keyframe_quality
        self.detect_every = detect_every

    @functools.cached_property
    def tracker(self) -> FaceTracker:
        """Built on first use: a Sender only given features (``encode``) loads no detector."""
        return FaceTracker(self.extractor.size, self.detect_every)

    def keyframe(self, face: np.ndarray) -> bytes:
        """A face crop (the first, normally) coded as the receiver's reference picture."""
        return encode_keyframe(face, self.keyframe_quality)

    def send(self, frame: np.ndarray, capture_ms: int, prompt_id: int = 0) -> SentFrame:
        """A captured frame (HxWx3 uint8 RGB) -> its face crop, motion features and packet."""
        face, features = self.extract(frame)
        return SentFrame(face, features, self.encode(features, capture_ms, prompt_id))

    def extract(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A captured frame -> (its face crop, size x size x 3 uint8 RGB; the crop's
        (schema.size,) float32 motion features): the slow half of :meth:`send`, which a live
        call runs on a worker thread while acknowledgements reach the encoder on its loop."""
        face = self.tracker.crop(frame)
        return face, self.extractor.extract(face)

    def encode(self, features: np.ndarray, capture_ms: int, prompt_id: int = 0) -> bytes:
        """Features extracted already (a clip coded at several settings is extracted once)."""
        return self.encoder.encode(features, capture_ms, prompt_id)

    def close(self) -> None:
        """Stop the face tracker's detection thread, if one was started."""
        if "tracker" in self.__dict__:
            self.tracker.close()
