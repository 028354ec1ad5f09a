"""Find the face in a frame and cut a stable square around it.

The networks expect a square, roughly centred head (VoxCeleb-style crops). OpenCV's Haar
cascade finds the face box; the crop is that box enlarged by ``margin`` so hair, chin and a
little background are kept. Two uses:

* live calls (:meth:`FaceCropper.crop_live`): a detection per frame, smoothed over time so
  the crop does not jitter, and the previous box kept when a frame has no detection;
* training (:meth:`FaceCropper.clip_box`): one box per clip, the median of detections over
  sampled frames, so the motion inside the crop is the head's own motion.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

CASCADE_FILE = "haarcascade_frontalface_default.xml"


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


def _load_cascade() -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise RuntimeError(
            "this OpenCV build has no Haar cascades (opencv-python 5.x dropped them); "
            "install opencv-python-headless>=4.9,<5"
        )
    path = cv2.data.haarcascades + CASCADE_FILE  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"could not load the Haar cascade {path}")
    return cascade


class FaceCropper:
    """Square face crops from RGB uint8 frames.

    margin: the crop side is ``(1 + margin)`` times the detected face box side.
    smoothing: weight of the previous box in live use (0 = no smoothing, 0.9 = very steady).
    min_face_fraction: faces smaller than this fraction of the frame's short side are ignored.
    """

    def __init__(
        self, margin: float = 0.8, smoothing: float = 0.8, min_face_fraction: float = 0.08
    ) -> None:
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.margin = margin
        self.smoothing = smoothing
        self.min_face_fraction = min_face_fraction
        self._cascade = _load_cascade()
        self._live_box: FaceBox | None = None

    def detect(self, image: np.ndarray) -> FaceBox | None:
        """The crop box around the largest face in ``image`` (HxWx3 uint8 RGB), or None."""
        _check_image(image)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        # Detect on a bounded size: the cascade's cost grows with pixels, faces stay findable.
        scale = min(1.0, 320.0 / max(gray.shape))
        small = cv2.resize(gray, None, fx=scale, fy=scale) if scale < 1.0 else gray
        small = cv2.equalizeHist(small)
        min_side = max(20, int(self.min_face_fraction * min(small.shape)))
        faces = self._cascade.detectMultiScale(
            small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        side = max(w, h) * (1.0 + self.margin) / scale
        # Haar boxes sit high on the face (brows to mouth): shift down to include the chin.
        return FaceBox(
            cx=float(x + w / 2) / scale, cy=float(y + h * 0.58) / scale, side=float(side)
        )

    def clip_box(self, frames: Sequence[np.ndarray], samples: int = 12) -> FaceBox | None:
        """One stable box for a whole clip: the median of detections on evenly spaced frames."""
        if len(frames) == 0:
            return None
        picks = np.unique(np.linspace(0, len(frames) - 1, num=min(samples, len(frames))).round())
        boxes = [box for i in picks if (box := self.detect(frames[int(i)])) is not None]
        if not boxes:
            return None
        values = np.median([(b.cx, b.cy, b.side) for b in boxes], axis=0)
        # Cover the head's whole travel: enlarge by the spread of the detected centres.
        spread = float(np.ptp([(b.cx, b.cy) for b in boxes], axis=0).max()) if len(boxes) > 1 else 0
        side = float(values[2]) + 0.5 * spread
        return FaceBox(cx=float(values[0]), cy=float(values[1]), side=side)

    def crop_live(self, image: np.ndarray, size: int) -> np.ndarray | None:
        """Crop for a live stream: smoothed box; the last box when this frame has no face.

        Returns None until a face has been seen once; call :meth:`reset` on a scene change.
        """
        box = self.detect(image)
        if box is not None:
            self._live_box = (
                box if self._live_box is None else self._live_box.blend(box, self.smoothing)
            )
        if self._live_box is None:
            return None
        return crop(image, self._live_box, size)

    def reset(self) -> None:
        """Forget the live box (a new call or a new person)."""
        self._live_box = None


def crop(image: np.ndarray, box: FaceBox, size: int) -> np.ndarray:
    """Cut ``box`` out of ``image``, resized to ``size x size``; outside pixels repeat the edge."""
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
    """The largest centred square of ``image``, resized to ``size`` (fallback without a face)."""
    _check_image(image)
    height, width = image.shape[:2]
    return crop(image, FaceBox(cx=width / 2, cy=height / 2, side=min(height, width)), size)


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
