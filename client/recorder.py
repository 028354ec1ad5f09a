"""Where the other participant's cartoon goes: an MP4 file (PyAV) and/or a window (OpenCV)."""

from __future__ import annotations

import fractions
import logging
from pathlib import Path

import av
import cv2
import numpy as np

logger = logging.getLogger(__name__)


class Mp4Recorder:
    """H.264 MP4 with each frame stamped at its arrival time (variable frame rate)."""

    def __init__(self, path: Path, fps: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fps = fps
        self._container = av.open(str(path), mode="w")
        self._stream: av.video.stream.VideoStream | None = None
        self._first_ms: float | None = None
        self._last_pts = -1
        self.frames = 0

    def write(self, image: np.ndarray, arrival_ms: float) -> None:
        """image: HxWx3 uint8 RGB; arrival_ms: when it was received (any monotonic ms clock)."""
        if self._stream is None:
            self._stream = self._open_stream(image.shape[1], image.shape[0])
            self._first_ms = arrival_ms
        assert self._first_ms is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = max(self._last_pts + 1, round(arrival_ms - self._first_ms))
        frame.time_base = fractions.Fraction(1, 1000)
        self._last_pts = frame.pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def _open_stream(self, width: int, height: int) -> av.video.stream.VideoStream:
        stream = self._container.add_stream("libx264", rate=round(self._fps))
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = fractions.Fraction(1, 1000)
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        stream.options = {"preset": "veryfast", "crf": "20"}
        return stream

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        self._container.close()


class Window:
    """An OpenCV window; turns itself off (with one warning) where there is no display."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.enabled = True

    def show(self, image: np.ndarray) -> None:
        if not self.enabled:
            return
        try:
            cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.waitKey(1)
        except cv2.error as exc:
            self.enabled = False
            logger.warning("cannot show video (%s); continuing without a window", exc.msg)

    def close(self) -> None:
        if self.enabled:
            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                logger.debug("window %s already gone", self.title)
