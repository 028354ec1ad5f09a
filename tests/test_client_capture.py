from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from client.capture import (
    FaceTracker,
    TalkingPortrait,
    VideoSource,
    open_source,
    read_image,
    synthetic_portrait_path,
)


def test_synthetic_portrait_ships_with_matplotlib() -> None:
    portrait = read_image(synthetic_portrait_path())
    assert portrait.ndim == 3 and portrait.shape[2] == 3 and portrait.dtype == np.uint8


def test_talking_portrait_moves_and_still_one_does_not() -> None:
    moving = open_source("synthetic", fps=25)
    frames = [moving.read() for _ in range(10)]
    assert np.abs(frames[9].astype(int) - frames[0].astype(int)).mean() > 1.0
    still = open_source("synthetic", fps=25, amplitude=0.0)
    first, later = still.read(), [still.read() for _ in range(5)][-1]
    assert np.array_equal(first, later)


def test_portrait_must_be_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="portrait must be HxWx3 uint8"):
        TalkingPortrait(np.zeros((8, 8), np.uint8), fps=25)


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not 'synthetic', a webcam index or an existing file"):
        open_source(str(tmp_path / "missing.mp4"), fps=25)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        open_source(str(broken), fps=25)


def test_video_file_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 80, np.uint8), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    source = open_source(str(path), fps=10)
    assert isinstance(source, VideoSource)
    frames = [source.read() for _ in range(6)]  # past the end: starts over
    assert [round(f.mean() / 80) for f in frames] == [0, 1, 2, 0, 1, 2]
    source.close()


def test_face_tracker_crops_the_face_square() -> None:
    tracker = FaceTracker(size=64)
    portrait = read_image(synthetic_portrait_path())
    crop = tracker.crop(portrait)
    assert crop.shape == (64, 64, 3)
    # the crop follows the detected face, not the centre square of the picture
    from models.face_crop import center_crop

    assert not np.array_equal(crop, center_crop(portrait, 64))
    tracker.close()
    with pytest.raises(ValueError, match="detect_every must be >= 1"):
        FaceTracker(size=64, detect_every=0)
