"""Face landmarks from MediaPipe's face mesh: a judge of where a face's features are that this
project did not train.

The structure figures of ``bench stylesheet`` come from keypoint detectors of our own, the
codec's and the structure detector distilled from it (:mod:`training.structure`), and a style
is trained against the second. The face mesh (468 landmarks; its weights ship inside the
``mediapipe`` wheel, as the face detector's do) was trained elsewhere on other faces, so where
it says the styled face's eyes, nose and mouth are is a check of both. It is no perfect judge
either: a strong restyling moves its landmarks too, though no pixel of the face moved, and it
loses the face under some (a face turned blue, inked outlines); ``bench stylesheet``'s judges
table measures it beside the two detectors.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType

import cv2
import numpy as np

from models.face_crop import mediapipe_solution

MESH_SIDE = 256  # pictures are enlarged to this side: the mesh misses faces at 128 px
MIN_CONFIDENCE = 0.3


class FaceLandmarker:
    """``find(image)``: the face mesh's 468 landmarks of the one face in ``image``."""

    def __init__(self) -> None:
        face_mesh = mediapipe_solution("face_mesh", "the face mesh")
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=1,
            refine_landmarks=False,
            min_detection_confidence=MIN_CONFIDENCE,
        )
        self._lock = threading.Lock()  # a graph runs one picture at a time

    def find(self, image: np.ndarray) -> np.ndarray | None:
        """468x2 landmarks (x, y in pixels of ``image``, HxWx3 uint8 RGB), or None: no face."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        enlarged = cv2.resize(
            np.ascontiguousarray(image), (MESH_SIDE, MESH_SIDE), interpolation=cv2.INTER_CUBIC
        )
        with self._lock:
            found = self._mesh.process(enlarged).multi_face_landmarks
        if not found:
            return None
        points = np.array([(point.x, point.y) for point in found[0].landmark], np.float64)
        return points * (width, height)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def landmark_shift(
    landmarker: FaceLandmarker,
    pictures: Sequence[np.ndarray],
    expected: Sequence[np.ndarray | None],
) -> tuple[float, int]:
    """(mean landmark distance in pixels between each picture and its ``expected`` landmarks
    (``find`` of its reference, found once by the caller), over the pairs where both have a
    face; how many pairs that is). NaN when no pair has."""
    if len(pictures) != len(expected):
        raise ValueError(f"{len(pictures)} pictures for {len(expected)} references")
    distances = []
    for picture, reference in zip(pictures, expected, strict=True):
        found = landmarker.find(picture)
        if found is not None and reference is not None:
            distances.append(float(np.linalg.norm(found - reference, axis=1).mean()))
    return (float(np.mean(distances)) if distances else float("nan")), len(distances)
