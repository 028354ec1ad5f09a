"""The motion feature vector: the only place on the models side that knows its layout.

Layout (float32): K keypoints (x, y) in [-1, 1], row-major, then K Jacobians (2x2, row-major)
when Jacobians are on; 60 floats for K = 10. Vectors from the network are validated before
they reach it so that a damaged packet gives a ValueError with the reason, never a garbage
frame or a crash.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "JACOBIAN_LIMIT",
    "MIN_JACOBIAN_DETERMINANT",
    "feature_size",
    "pack_motion",
    "regularize_motion",
    "unpack_motion",
    "validate_features",
]

# Beyond these a keypoint's local motion is a fold or a blow-up, not a face moving.
JACOBIAN_LIMIT = 4.0  # the range the default codec schema codes
MIN_JACOBIAN_DETERMINANT = 1e-3
# Keypoints come from a soft-argmax inside [-1, 1]; allow the rounding of a quantiser.
_KEYPOINT_TOLERANCE = 1e-4


def feature_size(num_kp: int, jacobians: bool = True) -> int:
    """Floats per frame for ``num_kp`` keypoints."""
    return num_kp * (6 if jacobians else 2)


def pack_motion(kp: np.ndarray, jacobian: np.ndarray | None) -> np.ndarray:
    """kp: Kx2, jacobian: Kx2x2 or None -> (K*6,) or (K*2,) float32 feature vector."""
    kp = np.asarray(kp, dtype=np.float32)
    if kp.ndim != 2 or kp.shape[1] != 2:
        raise ValueError(f"keypoints must have shape Kx2, got {kp.shape}")
    parts = [kp.reshape(-1)]
    if jacobian is not None:
        jacobian = np.asarray(jacobian, dtype=np.float32)
        if jacobian.shape != (kp.shape[0], 2, 2):
            raise ValueError(f"Jacobians must have shape {kp.shape[0]}x2x2, got {jacobian.shape}")
        parts.append(jacobian.reshape(-1))
    return validate_features(np.concatenate(parts), kp.shape[0], jacobians=jacobian is not None)


def regularize_motion(
    kp: np.ndarray, jacobian: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Network output made valid for :func:`validate_features`.

    Keypoints are clipped to [-1, 1], Jacobian entries to +-JACOBIAN_LIMIT, and a singular
    Jacobian (a degenerate detection) becomes the identity, i.e. the keypoint just moves.
    """
    kp = np.clip(kp, -1.0, 1.0).astype(np.float32)
    if jacobian is None:
        return kp, None
    jacobian = np.clip(jacobian, -JACOBIAN_LIMIT, JACOBIAN_LIMIT).astype(np.float32)
    singular = np.abs(np.linalg.det(jacobian.astype(np.float64))) < MIN_JACOBIAN_DETERMINANT
    jacobian[singular] = np.eye(2, dtype=np.float32)
    return kp, jacobian


def unpack_motion(
    features: np.ndarray, num_kp: int, jacobians: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validated (kp: Kx2, jacobian: Kx2x2 or None) from a feature vector."""
    features = validate_features(features, num_kp, jacobians)
    kp = features[: num_kp * 2].reshape(num_kp, 2)
    jacobian = features[num_kp * 2 :].reshape(num_kp, 2, 2) if jacobians else None
    return kp, jacobian


def validate_features(features: np.ndarray, num_kp: int, jacobians: bool = True) -> np.ndarray:
    """``features`` as a float32 vector, or ValueError saying what is wrong with it."""
    array = np.asarray(features)
    expected = feature_size(num_kp, jacobians)
    if array.shape != (expected,):
        raise ValueError(f"motion features must have shape ({expected},), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"motion features must be floating point, got {array.dtype}")
    array = array.astype(np.float32, copy=False)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"motion features contain NaN or inf (first at index {bad[0]})")
    kp = array[: num_kp * 2]
    outside = np.flatnonzero(np.abs(kp) > 1.0 + _KEYPOINT_TOLERANCE)
    if outside.size:
        index = outside[0]
        raise ValueError(f"keypoint coordinate {kp[index]:.4g} at index {index} is outside [-1, 1]")
    if jacobians:
        _validate_jacobians(array[num_kp * 2 :].reshape(num_kp, 2, 2), offset=num_kp * 2)
    return array


def _validate_jacobians(jacobian: np.ndarray, offset: int) -> None:
    large = np.flatnonzero(np.abs(jacobian.reshape(-1)) > JACOBIAN_LIMIT)
    if large.size:
        index = large[0]
        raise ValueError(
            f"Jacobian entry {jacobian.reshape(-1)[index]:.4g} at index {offset + index} "
            f"exceeds +-{JACOBIAN_LIMIT}"
        )
    determinants = np.linalg.det(jacobian.astype(np.float64))
    singular = np.flatnonzero(np.abs(determinants) < MIN_JACOBIAN_DETERMINANT)
    if singular.size:
        k = singular[0]
        raise ValueError(
            f"Jacobian of keypoint {k} is singular (determinant {determinants[k]:.3g}); "
            "its motion cannot be inverted"
        )
