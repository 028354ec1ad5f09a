"""Uniform scalar quantization with one step per feature group, scaled by a rate level.

The rate level ``L`` multiplies every group's base step by ``2 ** (L / 4)`` (four levels per
octave), so one small integer in the bitstream selects the precision of a whole frame.
"""

from __future__ import annotations

import numpy as np

from codec.schema import FeatureSchema

MIN_LEVEL = -16
MAX_LEVEL = 40
LEVELS_PER_OCTAVE = 4


def level_scale(level: int) -> float:
    """Step multiplier for a rate level."""
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"rate level {level} outside [{MIN_LEVEL}, {MAX_LEVEL}]")
    return float(2.0 ** (level / LEVELS_PER_OCTAVE))


class Quantizer:
    """Maps features to integer indices and back at one rate level.

    steps, low, high: per-channel arrays of length ``schema.size``; ``low``/``high`` are the
    inclusive integer index bounds that clipped features can reach.
    """

    def __init__(self, schema: FeatureSchema, level: int = 0) -> None:
        scale = level_scale(level)
        self.schema = schema
        self.level = level
        self.steps = np.empty(schema.size, dtype=np.float64)
        self.low = np.empty(schema.size, dtype=np.int64)
        self.high = np.empty(schema.size, dtype=np.int64)
        for group, part in schema.slices():
            step = group.step * scale
            self.steps[part] = step
            self.low[part] = int(np.ceil(group.low / step))
            self.high[part] = int(np.floor(group.high / step))

    def quantize(self, features: np.ndarray) -> np.ndarray:
        """features: (size,) float -> (size,) int64 indices, clipped to the schema range."""
        indices = np.rint(np.asarray(features, dtype=np.float64) / self.steps).astype(np.int64)
        return np.clip(indices, self.low, self.high)

    def dequantize(self, indices: np.ndarray) -> np.ndarray:
        """indices: (size,) int -> (size,) float32 features."""
        return (indices * self.steps).astype(np.float32)
