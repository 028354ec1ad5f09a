"""Benchmark input clips: first frames, square crop at one size, refused folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.clips import load_bench_clips
from tests.bench_clip import moving_shapes, write_clip


def test_centre_crop_keeps_the_first_frames_at_the_asked_size(tmp_path: Path) -> None:
    write_clip(tmp_path / "a.mp4", moving_shapes(frames=12, size=64))
    write_clip(tmp_path / "b.mp4", moving_shapes(frames=6, size=64))
    clips = load_bench_clips(tmp_path, size=48, max_frames=8, crop="center")
    assert [(name, frames.shape) for name, frames in clips] == [
        ("a", (8, 48, 48, 3)),
        ("b", (6, 48, 48, 3)),
    ]


def test_folder_without_videos_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no video"):
        load_bench_clips(tmp_path, size=64, crop="center")


def test_unknown_crop_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="crop must be one of"):
        load_bench_clips(tmp_path, size=64, crop="corner")


def test_face_crop_without_a_face_says_so(tmp_path: Path) -> None:
    write_clip(tmp_path / "shapes.mp4", moving_shapes(frames=4, size=64))
    with pytest.raises(ValueError, match="no face detected"):
        load_bench_clips(tmp_path, size=64, crop="face")
