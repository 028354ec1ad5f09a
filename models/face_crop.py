"""Find the face in a frame and cut a stable square around it.

The networks expect a square, roughly centred head (VoxCeleb-style crops). MediaPipe's
BlazeFace detector (its weights ship inside the ``mediapipe`` wheel) finds the face box, which
spans forehead to chin; the crop is that box enlarged by ``margin``, growing a little more
upward, so hair, chin and some background are kept. A crop never asks for more than the frame
holds: its side is at most the frame's short side and it is moved to lie inside the frame, so a
tight clip where the face fills the picture gives the whole frame, not smeared edge pixels.

This module is the one face tracker of the project: training (``training.videos``), the eval
clips, ``encode`` and the call all crop through it. Two uses:

* streams (:class:`FaceTracker`: a call's sender, ``encode``): detections smoothed over time
  so the crop does not jitter, and the previous box kept when a frame has no detection;
* training (:meth:`FaceCropper.clip_box`): one box per clip, the median of detections over
  sampled frames, so the motion inside the crop is the head's own motion.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Frames are shrunk to this long side before detection: BlazeFace sees 128 or 192 pixels.
DETECT_MAX_SIDE = 640
# BlazeFace short-range model (faces within ~2 m, the webcam case), then full-range (small
# faces in wide shots) when the first finds nothing. Full-range alone misses some close faces.
SHORT_RANGE, FULL_RANGE = 0, 1
# 0.6: every face of ../shared/data scores >= 0.66; a skin-coloured disc on noise scores 0.51.
MIN_CONFIDENCE = 0.6
# How much of the margin goes above the face box's centre (0.5 = evenly): more hair, less neck.
# With the default margin 0.75 the face box is 57% of the crop's side, as in the median
# pre-cropped (VoxCeleb-style) clip of ../shared/data.
UPWARD_SHARE = 0.65
# A call's sender detects on every 10th frame (FaceTracker): detection costs more than the
# rest of its per-frame work.
LIVE_DETECT_EVERY = 10


@dataclass(frozen=True)
class FaceBox:
    """Square crop in pixel coordinates: centre (cx, cy) and side length; may leave the image."""

    cx: float
    cy: float
    side: float

    def blend(self, other: FaceBox, keep: float) -> FaceBox:
        """Exponential smoothing: ``keep`` of this box plus ``1 - keep`` of ``other``."""
        mix = 1.0 - keep
        return FaceBox(
            cx=self.cx * keep + other.cx * mix,
            cy=self.cy * keep + other.cy * mix,
            side=self.side * keep + other.side * mix,
        )

    def inside(self, height: int, width: int) -> FaceBox:
        """This box shrunk to the frame's short side and moved to lie inside ``height x width``."""
        side = min(self.side, float(min(height, width)))
        half = side / 2
        return FaceBox(
            cx=float(np.clip(self.cx, half, width - half)),
            cy=float(np.clip(self.cy, half, height - half)),
            side=side,
        )


def mediapipe_solution(name: str, needed_by: str) -> Any:
    """MediaPipe's solution module ``name`` (``face_detection``, ``face_mesh``: their weights
    ship inside the wheel); RuntimeError saying how to install it where mediapipe is missing."""
    try:
        return importlib.import_module(f"mediapipe.python.solutions.{name}")
    except ImportError as error:
        raise RuntimeError(
            f"{needed_by} needs mediapipe ({error}); run `make install`, which installs "
            "mediapipe==0.10.21 without its desktop extras"
        ) from error


class _BlazeFace:
    """MediaPipe's two BlazeFace models, built once per process (graphs do not survive fork)."""

    def __init__(self) -> None:
        face_detection = mediapipe_solution("face_detection", "the face detector")
        self._models = [
            face_detection.FaceDetection(
                model_selection=model, min_detection_confidence=MIN_CONFIDENCE
            )
            for model in (SHORT_RANGE, FULL_RANGE)
        ]
        self._pid = os.getpid()
        self._lock = threading.Lock()  # a graph runs one frame at a time

    def faces(self, image: np.ndarray) -> np.ndarray:
        """Face boxes of ``image`` (HxWx3 uint8 RGB) as K x 4 (x0, y0, x1, y1) in [0, 1] units.

        The short-range model's faces, or the full-range model's when it finds none.
        """
        with self._lock:
            for model in self._models:
                found = model.process(np.ascontiguousarray(image)).detections or []
                # The graph's own threshold is not applied in this release: filter here.
                boxes = [_corners(d) for d in found if d.score[0] >= MIN_CONFIDENCE]
                if boxes:
                    return np.array(boxes, dtype=np.float64)
        return np.zeros((0, 4), dtype=np.float64)

    def stale(self) -> bool:
        """True in a forked child: its copy of the graphs must not be used."""
        return self._pid != os.getpid()


def _corners(detection: Any) -> tuple[float, float, float, float]:
    box = detection.location_data.relative_bounding_box
    return (box.xmin, box.ymin, box.xmin + box.width, box.ymin + box.height)


class FaceCropper:
    """Square face crops from RGB uint8 frames.

    margin: the crop side is ``(1 + margin)`` times the detected face box side (before the
        crop is fitted inside the frame); 0 gives the detector's own face box.
    smoothing: weight of the previous box in live use (0 = no smoothing, 0.9 = very steady).
    min_face_fraction: faces smaller than this fraction of the frame's short side are ignored.
    """

    def __init__(
        self, margin: float = 0.75, smoothing: float = 0.8, min_face_fraction: float = 0.05
    ) -> None:
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.margin = margin
        self.smoothing = smoothing
        self.min_face_fraction = min_face_fraction
        self._detector = _BlazeFace()

    def detect(self, image: np.ndarray) -> FaceBox | None:
        """The crop box around the largest face in ``image`` (HxWx3 uint8 RGB), or None.

        With ``margin > 0`` the box lies inside the image; with 0 it is the face box itself.
        """
        _check_image(image)
        if self._detector.stale():
            self._detector = _BlazeFace()
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        small = (
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            if scale < 1.0
            else image
        )
        faces = self._detector.faces(small) * np.array([width, height, width, height])
        sides = np.maximum(faces[:, 2] - faces[:, 0], faces[:, 3] - faces[:, 1])
        big = sides >= self.min_face_fraction * min(height, width)
        if not big.any():
            return None
        x0, y0, x1, y1 = faces[big][int(np.argmax(sides[big]))]
        face_side = float(max(x1 - x0, y1 - y0))
        extra = self.margin * face_side
        box = FaceBox(
            cx=float(x0 + x1) / 2,
            cy=float(y0 + y1) / 2 - (UPWARD_SHARE - 0.5) * extra,
            side=face_side + extra,
        )
        return box.inside(height, width) if self.margin > 0 else box

    def clip_box(self, frames: Sequence[np.ndarray], samples: int = 12) -> FaceBox | None:
        """One stable box for a whole clip: the median of detections on evenly spaced frames.

        frames: N frames, each HxWx3 uint8 RGB of one size.
        """
        if len(frames) == 0:
            return None
        picks = np.unique(np.linspace(0, len(frames) - 1, num=min(samples, len(frames))).round())
        boxes = [box for i in picks if (box := self.detect(frames[int(i)])) is not None]
        if not boxes:
            return None
        values = np.median([(b.cx, b.cy, b.side) for b in boxes], axis=0)
        # Cover the head's whole travel: enlarge by the spread of the detected centres.
        spread = float(np.ptp([(b.cx, b.cy) for b in boxes], axis=0).max()) if len(boxes) > 1 else 0
        box = FaceBox(cx=float(values[0]), cy=float(values[1]), side=float(values[2]) + spread / 2)
        height, width = frames[0].shape[:2]
        return box.inside(height, width) if self.margin > 0 else box


class FaceTracker:
    """Square face crops of a stream: the smoothed box of the detections so far, the centre
    square until a face shows, the last box while it is gone.

    ``detect_every`` 1 (offline ``encode``): a detection on every frame, in the caller's
    thread, so each frame is cut with its own detection. Above 1 (a live call, where the
    detector costs more than the rest of the sender's per-frame work): after the first frame,
    detection runs on a background thread every ``detect_every`` frames and never delays a crop;
    each frame is cut with the latest box. ``faceless`` counts the centre squares cut.
    """

    def __init__(self, size: int, detect_every: int = LIVE_DETECT_EVERY) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.size = size
        self.detect_every = detect_every
        self.faceless = 0
        self._cropper = FaceCropper()
        self._box: FaceBox | None = None
        self._frames = 0
        self._detector = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="face")
        self._detecting: concurrent.futures.Future[None] | None = None

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """frame: HxWx3 uint8 RGB -> size x size x 3 face crop."""
        if self._frames == 0 or self.detect_every == 1:
            self._update_box(frame)
        elif self._frames % self.detect_every == 0 and (
            self._detecting is None or self._detecting.done()
        ):
            self._detecting = self._detector.submit(self._update_box, frame)
        self._frames += 1
        box = self._box
        if box is None:
            self.faceless += 1
            return center_crop(frame, self.size)
        return crop(frame, box, self.size)

    def _update_box(self, frame: np.ndarray) -> None:
        box = self._cropper.detect(frame)
        if box is not None:
            keep = self._cropper.smoothing
            self._box = box if self._box is None else self._box.blend(box, keep)

    def close(self) -> None:
        self._detector.shutdown(wait=True, cancel_futures=True)


def crop(image: np.ndarray, box: FaceBox, size: int) -> np.ndarray:
    """Cut ``box`` out of ``image`` (HxWx3 uint8) as size x size x 3; outside, the edge repeats."""
    _check_image(image)
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    scale = size / box.side
    if scale < 0.5:
        # Shrink with area averaging first: the affine warp below would alias.
        pre = 2.0 * scale
        image = cv2.resize(image, None, fx=pre, fy=pre, interpolation=cv2.INTER_AREA)
        box = FaceBox(cx=box.cx * pre, cy=box.cy * pre, side=box.side * pre)
        scale = size / box.side
    # One affine warp does crop, pad and resize together.
    matrix = np.array(
        [[scale, 0.0, size / 2 - box.cx * scale], [0.0, scale, size / 2 - box.cy * scale]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of ``image`` (HxWx3 uint8) as size x size x 3 (no face found)."""
    _check_image(image)
    height, width = image.shape[:2]
    return crop(image, FaceBox(cx=width / 2, cy=height / 2, side=min(height, width)), size)


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
