"""Concealment of lost frames: the motion of a missing frame extrapolated from decoded ones.

When the next frame is overdue, the receiver shows ``Concealer.conceal()`` instead of freezing:
the newest frame moved on by the velocity of the last two decoded frames, halved at each
further concealed frame (so the face slows to a stop instead of drifting off), clipped to the
schema's ranges, for at most ``max_frames`` frames in a row; after that the face holds still
until a frame decodes. Concealed frames are marked ``concealed`` and are never a reference.
"""

from __future__ import annotations

import numpy as np

from codec.motiondecoder import DecodedFrame
from codec.schema import FeatureSchema, motion_schema

MAX_CONCEALED_FRAMES = 5  # 200 ms at 25 fps
DAMPING = 0.5  # velocity kept from one concealed frame to the next


class Concealer:
    def __init__(
        self, schema: FeatureSchema | None = None, max_frames: int = MAX_CONCEALED_FRAMES
    ) -> None:
        if max_frames < 0:
            raise ValueError(f"max_frames must be 0 or more, got {max_frames}")
        schema = schema or motion_schema()
        self.max_frames = max_frames
        self._low = np.concatenate([np.full(g.size, g.low) for g in schema.groups])
        self._high = np.concatenate([np.full(g.size, g.high) for g in schema.groups])
        self._decoded: DecodedFrame | None = None
        self._newest: DecodedFrame | None = None  # the last frame shown, decoded or concealed
        self._velocity = np.zeros(schema.size)
        self._run = 0
        self._interval_ms = 0.0

    def decoded(self, frame: DecodedFrame) -> None:
        """A frame came out of the decoder (older ones than the last decoded are ignored)."""
        last = self._decoded
        if last is not None and frame.seq <= last.seq:
            return
        if last is not None:
            steps = frame.seq - last.seq
            self._velocity = (frame.features - last.features).astype(np.float64) / steps
            self._interval_ms = (frame.capture_time_ms - last.capture_time_ms) / steps
        self._decoded = self._newest = frame
        self._run = 0

    @property
    def interval_ms(self) -> float:
        """Sender's frame interval seen in the last two decoded frames (0 before two)."""
        return self._interval_ms

    def conceal(self) -> DecodedFrame | None:
        """The next frame, extrapolated; None before two frames decoded or after
        ``max_frames`` concealed in a row."""
        newest = self._newest
        if newest is None or self._interval_ms <= 0 or self._run >= self.max_frames:
            return None
        self._velocity *= DAMPING if self._run else 1.0
        features = np.clip(newest.features + self._velocity, self._low, self._high)
        self._run += 1
        self._newest = DecodedFrame(
            seq=newest.seq + 1,
            capture_time_ms=round(newest.capture_time_ms + self._interval_ms),
            prompt_id=newest.prompt_id,
            intra=False,
            features=features.astype(np.float32),
            concealed=True,
        )
        return self._newest
