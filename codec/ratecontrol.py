"""Rate control: choose the quantization level that keeps the motion near ``target_kbps``.

The rate counts each packet whole, its header included, so the target is what the motion costs
whatever the frame rate (the headers are 1.2 kbps at 25 fps and 1.44 kbps at 30 fps).

The level changes only at intra frames (it travels in the intra payload), once per intra period,
from the payload rate measured over that period. Coarsening the step by one octave saves about
one bit per coded value at high rates and less at low rates, so the correction is proportional
with at least one level of movement when outside the tolerance band.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from codec.quantizer import LEVELS_PER_OCTAVE, MAX_LEVEL, MIN_LEVEL, level_scale

# The motion rate (packets with their headers) a sender aims for unless told otherwise: inside
# the controller's band (TOLERANCE) the motion stays under 4 kbps at any frame rate. At 25 fps
# this leaves 2.5 kbps of payload; on the validation clips (bench rd, 150 frames) coarsening
# the step that much cost 0.003 SSIM against the finest fixed step.
DEFAULT_TARGET_KBPS = 3.6
TOLERANCE = 0.1  # relative band around the target inside which the level is kept
MAX_LEVEL_STEP = 4


def parse_target_kbps(text: str) -> float | None:
    """Command-line value of a motion rate target: positive kbps, or 'off' (a fixed step)."""
    if text.strip().lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive kbps or 'off', got {text!r}")
    return value


@dataclass(frozen=True)
class RateReport:
    """What was actually sent; kbps assume one packet per frame at ``fps``."""

    packets: int
    intra_packets: int
    payload_bytes: int
    header_bytes: int
    fps: float
    level: int
    step_scale: float

    @property
    def seconds(self) -> float:
        return self.packets / self.fps

    @property
    def payload_kbps(self) -> float:
        return 8 * self.payload_bytes / self.seconds / 1000 if self.packets else 0.0

    @property
    def total_kbps(self) -> float:
        return (
            8 * (self.payload_bytes + self.header_bytes) / self.seconds / 1000
            if self.packets
            else 0.0
        )


class RateController:
    """Tracks the motion rate (whole packets) and picks the level for each new intra period."""

    def __init__(
        self,
        target_kbps: float | None,
        fps: float,
        values_per_frame: int,
        level: int = 0,
        max_level: int = MAX_LEVEL,
    ):
        """max_level: the coarsest level the schema can code (``quantizer.max_level``)."""
        if target_kbps is not None and not target_kbps > 0:
            raise ValueError(f"target_kbps must be positive, got {target_kbps}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        level_scale(max_level)  # validates the bound
        if not MIN_LEVEL <= level <= max_level:
            raise ValueError(f"rate level {level} outside [{MIN_LEVEL}, {max_level}]")
        self.target_kbps = target_kbps
        self.fps = fps
        self.values_per_frame = values_per_frame
        self.level = level
        self.max_level = max_level
        self._window_bits = 0
        self._window_frames = 0

    def record(self, packet_bytes: int) -> None:
        """One packet sent: its size with the header."""
        self._window_bits += 8 * packet_bytes
        self._window_frames += 1

    def next_level(self) -> int:
        """Level for the intra frame about to be coded (and the period it starts)."""
        if self.target_kbps is None or self._window_frames == 0:
            return self.level
        actual_bps = self._window_bits * self.fps / self._window_frames
        target_bps = self.target_kbps * 1000
        self._window_bits = self._window_frames = 0
        if abs(actual_bps - target_bps) <= TOLERANCE * target_bps:
            return self.level
        excess_bits_per_value = (actual_bps - target_bps) / (self.fps * self.values_per_frame)
        change = round(LEVELS_PER_OCTAVE * excess_bits_per_value)
        if change == 0:
            change = 1 if actual_bps > target_bps else -1
        change = max(-MAX_LEVEL_STEP, min(MAX_LEVEL_STEP, change))
        self.level = max(MIN_LEVEL, min(self.max_level, self.level + change))
        return self.level
