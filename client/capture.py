"""Frame sources for the call client: webcam, video file, or a still portrait made to talk.

``open_source(spec)`` picks one from a string: ``synthetic`` (matplotlib's public-domain
grace_hopper.jpg), a webcam index (``0``), an image file (animated like ``synthetic``) or a video
file (played in real time, looped). Every source returns HxWx3 uint8 RGB frames
(``models.face_crop.FaceTracker`` cuts the face square out of them); ``CaptureThread`` reads a
source on its own thread, so a camera's (or a slow file's) ``read()`` never holds up the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from models.face_crop import FaceCropper

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class FrameSource(Protocol):
    def read(self) -> np.ndarray:
        """The next frame, HxWx3 uint8 RGB."""

    def close(self) -> None: ...


def synthetic_portrait_path() -> Path:
    """Grace Hopper's portrait (public domain, US Navy), shipped inside matplotlib."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}: not a readable image file")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class TalkingPortrait:
    """A still portrait animated by smooth head motion (turn, nod, sway, zoom) and a mouth
    that opens and closes, so a call without a camera still carries real motion.

    amplitude scales every movement (0 = a perfectly still picture).
    """

    def __init__(
        self, image: np.ndarray, fps: float, amplitude: float = 1.0, seed: int = 0
    ) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"portrait must be HxWx3 uint8, got {image.shape} {image.dtype}")
        self.image = image
        self.fps = fps
        self.amplitude = amplitude
        self._frame_index = 0
        self._phase = np.random.default_rng(seed).uniform(0, 2 * math.pi, size=6)
        height, width = image.shape[:2]
        grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
        self._grid = (grid_x, grid_y)
        self._mouth_y, self._mouth = self._mouth_weight(width, height)

    def _mouth_weight(self, width: int, height: int) -> tuple[float, np.ndarray]:
        """Mouth line y and a Gaussian weight around the mouth (from the detected face)."""

        box = FaceCropper(margin=0.0).detect(self.image)
        if box is None:
            cx, cy, side = width / 2, height * 0.6, min(width, height) / 3
        else:
            cx, cy, side = box.cx, box.cy, box.side
        mouth_x, mouth_y = cx, cy + 0.22 * side
        grid_x, grid_y = self._grid
        dx, dy = (grid_x - mouth_x) / (0.22 * side), (grid_y - mouth_y) / (0.12 * side)
        return mouth_y, np.exp(-(dx**2 + dy**2) / 2).astype(np.float32)

    def read(self) -> np.ndarray:
        t = self._frame_index / self.fps
        self._frame_index += 1
        a, p = self.amplitude, self._phase
        height, width = self.image.shape[:2]
        angle = a * 7.0 * math.sin(2 * math.pi * 0.31 * t + p[0])
        scale = 1.0 + a * 0.05 * math.sin(2 * math.pi * 0.17 * t + p[1])
        shift_x = a * 0.05 * width * math.sin(2 * math.pi * 0.23 * t + p[2])
        shift_y = a * 0.03 * height * math.sin(2 * math.pi * 0.41 * t + p[3])
        mouth_open = (
            a
            * 0.5
            * (1 + math.sin(2 * math.pi * 2.3 * t + p[4]))
            * (0.5 + 0.5 * math.sin(2 * math.pi * 0.37 * t + p[5]))
        )
        # Mouth: stretch the rows around the mouth line, as if the jaw dropped.
        grid_x, grid_y = self._grid
        map_y = grid_y - mouth_open * 0.35 * self._mouth * (grid_y - self._mouth_y)
        talking = cv2.remap(
            self.image, grid_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
        matrix[:, 2] += (shift_x, shift_y)
        return cv2.warpAffine(talking, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)

    def close(self) -> None:
        """Nothing to release."""


class VideoSource:
    """A webcam by its index (or, for ``VideoFile``, a file's path), read with OpenCV."""

    def __init__(self, target: int | str) -> None:
        self._target = target
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            raise ValueError(f"cannot open video source {target!r}: check the camera index or path")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def read(self) -> np.ndarray:
        ok, frame = self._capture.read()
        if not ok:
            raise EOFError(f"video source {self._target!r} gave no frame")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()


class Playhead:
    """Where a looped file is at an instant of a clock (ms): 0 at the first instant asked, then
    on with the clock, wrapping at ``period_ms``. A file's pictures and its sound share one, so
    both start at that instant; safe to ask from several threads."""

    def __init__(self, period_ms: float) -> None:
        if not period_ms > 0:
            raise ValueError(f"period_ms must be > 0, got {period_ms}")
        self.period_ms = period_ms
        self.origin_ms: float | None = None
        self._lock = threading.Lock()

    def position_ms(self, at_ms: float) -> float:
        """The file's position (ms, in [0, period_ms)) at ``at_ms``."""
        with self._lock:
            if self.origin_ms is None:
                self.origin_ms = at_ms
        return (at_ms - self.origin_ms) % self.period_ms


class VideoFile(VideoSource):
    """A video file played in real time and looped: each read gives the picture at the file's
    position (``playhead``, shared with the file's sound) at ``clock()`` (ms), skipping pictures
    (``grab``, cheap) or giving the last one again as the reader's rate asks (and past the
    file's real end, where its frame count said more, until the loop comes). Without a clock,
    the n-th read is at n / ``fps`` s (a reader that wants every picture of a file made at its
    ``fps``)."""

    def __init__(self, path: Path, fps: float, clock: Callable[[], float] | None = None) -> None:
        super().__init__(str(path))
        self.path = path
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if self.frame_count <= 0 or self.fps <= 0:
            self.close()
            raise ValueError(
                f"cannot play video {path}: it says {self.frame_count} frames at {self.fps} fps"
            )
        self.playhead = Playhead(self.frame_count / self.fps * 1000)
        self._clock = clock
        self._read_fps = fps
        self._reads = 0
        self._next = 0  # the picture the capture decodes next
        self._last: np.ndarray | None = None  # picture _next - 1, HxWx3 uint8 RGB

    def _now_ms(self) -> float:
        if self._clock is not None:
            return self._clock()
        self._reads += 1
        return (self._reads - 1) * 1000 / self._read_fps

    def read(self) -> np.ndarray:
        """The picture at the file's position now (HxWx3 uint8 RGB; the same array again while
        that picture lasts)."""
        position_ms = self.playhead.position_ms(self._now_ms())
        index = min(int(position_ms * self.fps / 1000), self.frame_count - 1)
        if self._last is not None and index == self._next - 1:
            return self._last
        if index < self._next:  # looped (or the clock stepped back)
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            self._next = index
        while self._next < index and self._capture.grab():
            self._next += 1
        ok, frame = self._capture.read() if self._next == index else (False, None)
        if not ok or frame is None:
            if self._last is None:
                raise EOFError(f"video {self.path} gave no picture {index} of {self.frame_count}")
            return self._last  # past the file's real end: the last picture holds until the loop
        self._next = index + 1
        self._last = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        return self._last


def open_source(
    spec: str,
    fps: float,
    amplitude: float = 1.0,
    seed: int = 0,
    clock: Callable[[], float] | None = None,
) -> FrameSource:
    """``synthetic`` | webcam index | image file (animated) | video file (``VideoFile``: in real
    time on ``clock``, ms, looped)."""
    if spec == "synthetic":
        return TalkingPortrait(read_image(synthetic_portrait_path()), fps, amplitude, seed)
    if spec.isdigit():
        return VideoSource(int(spec))
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"input {spec!r} is not 'synthetic', a webcam index or an existing file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return TalkingPortrait(read_image(path), fps, amplitude, seed)
    return VideoFile(path, fps, clock)


class CaptureThread:
    """Reads a FrameSource at ``fps`` on a worker thread and hands the frames to an event loop.

    The hand-over holds one frame: when the consumer falls behind, the newest frame wins and
    the older one is dropped (counted in ``dropped``). Each frame comes with its capture time,
    ``clock()`` (ms) right after ``read()`` returned. An exception of ``read()`` ends the thread
    and is raised by the next :meth:`next`. ``close`` stops the thread and closes the source.
    """

    def __init__(
        self, source: FrameSource, fps: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.source = source
        self.period_s = 1.0 / fps
        self.clock = clock
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._frames: asyncio.Queue[tuple[np.ndarray, float] | BaseException] | None = None

    def start(self) -> None:
        """Start reading; call on the event loop that will await :meth:`next`."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._frames = asyncio.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    async def next(self) -> tuple[np.ndarray, float]:
        """The newest frame not yet taken (HxWx3 uint8 RGB) and its capture time."""
        self.start()
        assert self._frames is not None
        item = await self._frames.get()
        if isinstance(item, BaseException):
            self._frames.put_nowait(item)  # every later call fails the same way
            raise item
        return item

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                item: tuple[np.ndarray, float] | BaseException = (
                    self.source.read(),
                    self.clock(),
                )
            # handed to the consumer, which raises it on the event loop
            except Exception as exc:
                self._hand_over(exc)
                return
            self._hand_over(item)
            due = max(due + self.period_s, time.monotonic())
            self._stop.wait(due - time.monotonic())

    def _hand_over(self, item: tuple[np.ndarray, float] | BaseException) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._put_newest, item)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self._stop.set()

    def _put_newest(self, item: tuple[np.ndarray, float] | BaseException) -> None:
        assert self._frames is not None
        if self._frames.full():
            self._frames.get_nowait()
            self.dropped += 1
        self._frames.put_nowait(item)

    async def close(self) -> None:
        """Stop the thread (waiting off the loop for a ``read()`` in progress), close the source."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self.source.close()
        if self.dropped:
            logger.info("capture: %d frames dropped (the sender fell behind)", self.dropped)
