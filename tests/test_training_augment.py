import numpy as np
import pytest

from tests.models_helpers import face_like_frame
from training.augment import NONE, Augmentation, augment_pair


def test_no_augmentation_returns_the_frames_unchanged() -> None:
    frame = face_like_frame(32)
    source, driving = augment_pair(frame, frame[::-1].copy(), np.random.default_rng(0), NONE)
    np.testing.assert_array_equal(source, frame)
    np.testing.assert_array_equal(driving, frame[::-1])


def test_both_frames_of_a_pair_get_the_same_draw() -> None:
    frame = face_like_frame(32)
    for seed in range(10):
        source, driving = augment_pair(frame, frame, np.random.default_rng(seed), Augmentation())
        np.testing.assert_array_equal(source, driving)
    changed = [
        np.abs(
            augment_pair(frame, frame, np.random.default_rng(s), Augmentation())[0]
            - frame.astype(int)
        ).mean()
        for s in range(10)
    ]
    assert min(changed) > 0.5  # every draw changes the picture


def test_a_flip_alone_mirrors_both_frames() -> None:
    frame = face_like_frame(32, shift=4)
    only_flip = Augmentation(True, 0, 0, 0, 0, 0, 0)
    outcomes = {
        augment_pair(frame, frame, np.random.default_rng(s), only_flip)[0].tobytes()
        for s in range(20)
    }
    assert outcomes == {frame.tobytes(), frame[:, ::-1].tobytes()}


def test_grey_stays_grey_under_hue_and_saturation_jitter() -> None:
    grey = np.full((16, 16, 3), 128, dtype=np.uint8)
    colour_only = Augmentation(False, 0, 0, 0, 0, 0.5, 0.2)
    out, _ = augment_pair(grey, grey, np.random.default_rng(1), colour_only)
    assert np.abs(out.astype(int) - 128).max() <= 1


def test_pairs_of_different_shapes_are_refused() -> None:
    with pytest.raises(
        ValueError, match=r"pair frames differ in shape: \(32, 32, 3\) vs \(16, 16, 3\)"
    ):
        augment_pair(face_like_frame(32), face_like_frame(16), np.random.default_rng(0), NONE)
