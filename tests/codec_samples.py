"""Deterministic motion feature sequences for the codec tests (no models needed)."""

from __future__ import annotations

import numpy as np


def synthetic_motion(frames: int, seed: int = 0, num_kp: int = 10) -> np.ndarray:
    """frames x (6 * num_kp) float32: keypoints drifting in [-0.9, 0.9], Jacobians near identity."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-0.6, 0.6, size=2 * num_kp)
    keypoints = np.clip(start + np.cumsum(rng.normal(0, 0.005, (frames, 2 * num_kp)), 0), -0.9, 0.9)
    identity = np.tile([1.0, 0.0, 0.0, 1.0], num_kp)
    jacobians = identity + np.cumsum(rng.normal(0, 0.01, (frames, 4 * num_kp)), 0)
    return np.concatenate([keypoints, jacobians], axis=1).astype(np.float32)


def encode_all(encoder, features: np.ndarray, fps: float = 25.0) -> list[bytes]:
    return [
        encoder.encode(f, capture_time_ms=round(i * 1000 / fps), prompt_id=3)
        for i, f in enumerate(features)
    ]
