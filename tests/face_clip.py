"""Test material for face crop and training: a real portrait (shipped with matplotlib) and a
short mp4 of it drifting, so the Haar cascade has a face to find without any data download."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np

from tests.bench_clip import write_clip


def portrait() -> np.ndarray:
    """Grace Hopper, 600x512x3 uint8 RGB."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def drifting_portrait(frames: int = 8, size: int = 200) -> np.ndarray:
    """N x size x size x 3: the portrait shifted a few pixels per frame (a moving head)."""
    image = cv2.resize(portrait(), (size, int(size * 600 / 512)))
    clip = []
    for i in range(frames):
        shift = np.float32([[1, 0, i - frames / 2], [0, 1, (i % 3) - 1]])
        moved = cv2.warpAffine(
            image, shift, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE
        )
        clip.append(moved[:size])
    return np.stack(clip)


def write_face_video(path: Path, frames: int = 8, size: int = 200) -> Path:
    return write_clip(path, drifting_portrait(frames, size))
