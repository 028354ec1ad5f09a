"""A tiny synthetic talking-head stand-in for the bench tests: moving shapes, written as mp4."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def moving_shapes(frames: int = 16, size: int = 64) -> np.ndarray:
    """N x size x size x 3 uint8: a textured background, a drifting disc and a sliding bar."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), (7, 7), 0)
    clip = []
    for i in range(frames):
        frame = background.copy()
        centre = (size // 3 + i, size // 2 + (i % 5) - 2)
        cv2.circle(frame, centre, size // 5, (230, 180, 140), -1)
        cv2.rectangle(frame, (i, size - 14), (i + size // 3, size - 6), (40, 60, 200), -1)
        clip.append(frame)
    return np.stack(clip)


def write_clip(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """Write RGB frames as a near-lossless H.264 mp4 (so decoding gives nearly the same frames)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0"}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def run_bench(argv: list[str]) -> int:
    """Run `cartooncodec bench ...` through the bench parser alone (other commands not needed)."""
    import argparse

    from bench.cli import register

    parser = argparse.ArgumentParser(prog="cartooncodec")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
