"""How far decoded motion is from the original, in units a viewer can picture (pixels)."""

from __future__ import annotations

import numpy as np

from codec.schema import FeatureSchema

KEYPOINT_GROUP = "keypoints"


def keypoint_error_px(
    original: np.ndarray, decoded: np.ndarray, schema: FeatureSchema, size: int = 256
) -> tuple[float, float]:
    """original, decoded: NxF features -> (max, mean) |keypoint error| in pixels at size x size.

    Keypoints live in [-1, 1] across the frame, so one unit is size / 2 pixels.
    """
    parts = {group.name: part for group, part in schema.slices()}
    if KEYPOINT_GROUP not in parts:
        raise ValueError(f"schema has no {KEYPOINT_GROUP!r} group")
    part = parts[KEYPOINT_GROUP]
    error = np.abs(np.asarray(original)[:, part] - np.asarray(decoded)[:, part]) * (size / 2)
    if error.size == 0:
        return 0.0, 0.0
    return float(error.max()), float(error.mean())
