"""MediaPipe's face mesh as bench stylesheet's independent judge, on the public portrait."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from bench.landmarks import FaceLandmarker, landmark_shift
from tests.face_clip import portrait


@pytest.fixture(scope="module")
def landmarker() -> Iterator[FaceLandmarker]:
    with FaceLandmarker() as found:
        yield found


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """Grace Hopper's head, 128x128 RGB."""
    return cv2.resize(portrait()[100:420, 110:430], (128, 128), interpolation=cv2.INTER_AREA)


def test_a_moved_face_moves_its_landmarks_as_far(
    landmarker: FaceLandmarker, face: np.ndarray
) -> None:
    here = landmarker.find(face)
    assert here is not None and here.shape == (468, 2)
    assert 30 < here[:, 0].mean() < 98 and 30 < here[:, 1].mean() < 98  # in the picture's pixels
    there = landmarker.find(np.roll(face, 4, axis=1))
    assert there is not None
    shift = (there - here).mean(axis=0)
    assert abs(shift[0] - 4) < 1.0 and abs(shift[1]) < 0.5, shift


def test_the_shift_is_averaged_over_pairs_where_both_have_a_face(
    landmarker: FaceLandmarker,
    face: np.ndarray,
) -> None:
    blank = np.full_like(face, 128)
    assert landmarker.find(blank) is None
    here = landmarker.find(face)
    same, pairs = landmark_shift(landmarker, [face, blank], [here, here])
    assert (same, pairs) == (0.0, 1)
    nothing, none = landmark_shift(landmarker, [blank, face], [here, None])
    assert np.isnan(nothing) and none == 0


def test_bad_pictures_are_refused(landmarker: FaceLandmarker, face: np.ndarray) -> None:
    with pytest.raises(ValueError, match="expected HxWx3 uint8 RGB"):
        landmarker.find(face.astype(np.float32))
    with pytest.raises(ValueError, match="expected HxWx3 uint8 RGB"):
        landmarker.find(face[..., 0])
    with pytest.raises(ValueError, match="2 pictures for 1 references"):
        landmark_shift(landmarker, [face, face], [landmarker.find(face)])
