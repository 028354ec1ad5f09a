import numpy as np
import pytest

from models.motion_features import (
    JACOBIAN_LIMIT,
    pack_motion,
    regularize_motion,
    unpack_motion,
    validate_features,
)


def _motion(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(-1, 1, (10, 2)).astype(np.float32)
    jacobian = (np.eye(2) + rng.normal(0, 0.1, (10, 2, 2))).astype(np.float32)
    return kp, jacobian


def test_layout_is_keypoints_then_jacobians_row_major() -> None:
    kp, jacobian = _motion()
    features = pack_motion(kp, jacobian)
    assert features.shape == (60,) and features.dtype == np.float32
    assert features[0] == kp[0, 0] and features[1] == kp[0, 1] and features[2] == kp[1, 0]
    assert features[20] == jacobian[0, 0, 0] and features[21] == jacobian[0, 0, 1]
    assert features[22] == jacobian[0, 1, 0] and features[59] == jacobian[9, 1, 1]


def test_pack_unpack_round_trip_is_exact() -> None:
    kp, jacobian = _motion(1)
    kp_out, jacobian_out = unpack_motion(pack_motion(kp, jacobian), 10)
    assert np.array_equal(kp_out, kp)
    assert jacobian_out is not None and np.array_equal(jacobian_out, jacobian)


def test_without_jacobians_only_keypoints_are_packed() -> None:
    kp, _ = _motion()
    features = pack_motion(kp, None)
    assert features.shape == (20,)
    assert unpack_motion(features, 10, jacobians=False)[1] is None


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (3, np.nan, "NaN or inf \\(first at index 3\\)"),
        (30, np.inf, "NaN or inf \\(first at index 30\\)"),
        (5, 1.5, "keypoint coordinate 1.5 at index 5 is outside \\[-1, 1\\]"),
        (21, JACOBIAN_LIMIT + 1, "Jacobian entry 5 at index 21 exceeds"),
    ],
)
def test_bad_values_are_refused_with_the_reason(index: int, value: float, message: str) -> None:
    features = pack_motion(*_motion())
    features[index] = value
    with pytest.raises(ValueError, match=message):
        validate_features(features, 10)


def test_singular_jacobian_is_refused() -> None:
    kp, jacobian = _motion()
    jacobian[4] = [[1.0, 2.0], [0.5, 1.0]]
    features = np.concatenate([kp.ravel(), jacobian.ravel()])
    with pytest.raises(ValueError, match="Jacobian of keypoint 4 is singular"):
        validate_features(features, 10)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.zeros(59, np.float32), "shape \\(60,\\), got \\(59,\\)"),
        (np.zeros((10, 6), np.float32), "shape \\(60,\\), got \\(10, 6\\)"),
        (np.zeros(60, np.int32), "floating point"),
    ],
)
def test_wrong_shapes_and_types_are_refused(features: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_features(features, 10)


def test_regularize_makes_network_output_valid() -> None:
    kp, jacobian = _motion()
    kp[0, 0] = 1.2
    jacobian[1] = [[9.0, 0.0], [0.0, 1.0]]
    jacobian[2] = 0.0
    kp_out, jacobian_out = regularize_motion(kp, jacobian)
    assert kp_out[0, 0] == 1.0
    assert jacobian_out is not None
    assert jacobian_out[1, 0, 0] == JACOBIAN_LIMIT
    assert np.array_equal(jacobian_out[2], np.eye(2))
    validate_features(pack_motion(kp_out, jacobian_out), 10)
