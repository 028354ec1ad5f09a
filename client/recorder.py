"""Where the other participant's cartoon goes: an MP4 file (PyAV) and/or a window (OpenCV).

``OutputThread`` feeds both from a worker thread, so x264 and ``cv2.imshow``/``waitKey`` never
run on the event loop that also runs the call's transport.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
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


RECORD_BACKLOG = 64  # frames waiting for the encoder before new ones are dropped


class OutputThread:
    """Records and/or shows received frames on one worker thread.

    ``put`` never blocks: the recording keeps every frame while at most ``backlog`` wait for
    the encoder (beyond that new frames are dropped, counted in ``dropped``); the window shows
    the newest waiting frame and skips older ones. ``close`` finishes the recording.
    """

    def __init__(
        self, recorder: Mp4Recorder | None, window: Window | None, backlog: int = RECORD_BACKLOG
    ) -> None:
        if backlog < 1:
            raise ValueError(f"backlog must be >= 1, got {backlog}")
        self.recorder = recorder
        self.window = window
        self.dropped = 0
        self._frames: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue(backlog)
        self._thread = threading.Thread(target=self._run, name="output", daemon=True)
        self._thread.start()

    def put(self, image: np.ndarray, arrival_ms: float) -> None:
        """image: HxWx3 uint8 RGB, kept as is (the caller must not change it afterwards)."""
        try:
            self._frames.put_nowait((image, arrival_ms))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        unshown: np.ndarray | None = None
        while (item := self._frames.get()) is not None:
            unshown, arrival_ms = item
            if self.recorder is not None:
                self.recorder.write(unshown, arrival_ms)
            if self.window is not None and self._frames.empty():
                self.window.show(unshown)
                unshown = None
        if self.recorder is not None:
            self.recorder.close()
        if self.window is not None:
            if unshown is not None:  # the last frame came with the close
                self.window.show(unshown)
            self.window.close()

    async def close(self) -> None:
        """Write what is queued, close the recording and the window (off the event loop)."""
        await asyncio.to_thread(self._finish)
        if self.dropped:
            logger.warning("output: %d frames dropped (the recorder fell behind)", self.dropped)

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._frames.put(None)
            self._thread.join()
