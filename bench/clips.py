"""Benchmark input: the first frames of each clip in a folder, square-cropped at one size.

Every codec under test gets exactly these frames, so rate and quality compare like with like.
Decoding and face cropping are the training data's (`training.videos`, `models.face_crop`);
`crop="center"` skips face detection for footage without a detectable face (synthetic tests).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CROPS = ("face", "center")


def load_bench_clips(
    folder: Path, size: int, max_frames: int | None = None, crop: str = "face"
) -> list[tuple[str, np.ndarray]]:
    """(name, N x size x size x 3 uint8 RGB) per video in ``folder``: its first ``max_frames``.

    Still images are left out (a rate needs motion); raises ValueError when nothing is usable.
    """
    from models.face_crop import center_crop
    from training.videos import VIDEO_EXTENSIONS, Clip, discover, load_clips, read_video

    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    videos = [p for p in discover(folder) if p.suffix.lower() in VIDEO_EXTENSIONS]
    if not videos:
        raise ValueError(f"no video (mp4/mov/avi) in {folder}; pass a folder of face clips")
    if crop == "face":
        clips, _ = load_clips(folder, size)
    else:
        clips = [
            Clip(p.stem, np.stack([center_crop(f, size) for f in read_video(p)])) for p in videos
        ]
    video_names = {p.stem for p in videos}
    return [
        (clip.name, np.ascontiguousarray(clip.frames[:max_frames]))
        for clip in clips
        if clip.name in video_names and len(clip) > 1
    ]
