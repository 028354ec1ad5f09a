"""Uniform scalar quantization with one step per feature group, scaled by a rate level.

The rate level ``L`` multiplies every group's base step by ``2 ** (L / 4)`` (four levels per
octave), so one small integer in the bitstream selects the precision of a whole frame. A level
is usable with a schema only while every group keeps at least two index values (``max_level``):
coarser, a group's range collapses to one point, which the entropy model cannot code.
"""

from __future__ import annotations

import numpy as np

from codec.schema import FeatureGroup, FeatureSchema

MIN_LEVEL = -16
MAX_LEVEL = 40
LEVELS_PER_OCTAVE = 4


def level_scale(level: int) -> float:
    """Step multiplier for a rate level."""
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"rate level {level} outside [{MIN_LEVEL}, {MAX_LEVEL}]")
    return float(2.0 ** (level / LEVELS_PER_OCTAVE))


def max_level(schema: FeatureSchema) -> int:
    """The coarsest rate level at which every group of ``schema`` keeps two index values."""
    for level in range(MAX_LEVEL, MIN_LEVEL - 1, -1):
        ranges = [_index_range(g, g.step * level_scale(level)) for g in schema.groups]
        if all(low < high for low, high in ranges):
            return level
    raise ValueError("no rate level gives every group of this schema two index values")


def _index_range(group: FeatureGroup, step: float) -> tuple[int, int]:
    """Inclusive integer index bounds that values clipped to the group's range reach."""
    return int(np.ceil(group.low / step)), int(np.floor(group.high / step))


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
            low, high = _index_range(group, step)
            if low >= high:
                raise ValueError(
                    f"rate level {level} leaves group {group.name!r} a single value; "
                    f"this schema allows levels up to {max_level(schema)}"
                )
            self.steps[part] = step
            self.low[part], self.high[part] = low, high

    def quantize(self, features: np.ndarray) -> np.ndarray:
        """features: (size,) float -> (size,) int64 indices, clipped to the schema range."""
        indices = np.rint(np.asarray(features, dtype=np.float64) / self.steps).astype(np.int64)
        return np.clip(indices, self.low, self.high)

    def dequantize(self, indices: np.ndarray) -> np.ndarray:
        """indices: (size,) int -> (size,) float32 features."""
        return (indices * self.steps).astype(np.float32)
