"""Where the other participant's cartoon goes: an MP4 file (PyAV) and/or a window (OpenCV).

The MP4 carries the other's sound too (AAC, mono 48 kHz), each sample at the time it played,
on the same clock as the frames. ``OutputThread`` feeds both from a worker thread, so x264, the
AAC encoder and ``cv2.imshow``/``waitKey`` never run on the event loop that also runs the
call's transport.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from collections import deque
from pathlib import Path

import av
import cv2
import numpy as np

logger = logging.getLogger(__name__)


AUDIO_RATE = 48_000
PENDING_AUDIO_CHUNKS = 125  # sound kept while no frame has come to open the file with


class Mp4Recorder:
    """H.264 MP4 with each frame stamped at its arrival time (variable frame rate); with
    ``audio``, an AAC track (mono, 48 kHz) of the samples given to ``write_audio``, each at the
    time it played, continuous from the first: silence fills the gaps between them. Times are
    ms on one monotonic clock, counted in the file from the first frame or sample written."""

    def __init__(self, path: Path, fps: float, audio: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fps = fps
        self._audio = audio
        self._container = av.open(str(path), mode="w")
        self._stream: av.video.stream.VideoStream | None = None
        self._audio_stream: av.audio.stream.AudioStream | None = None
        # the file's streams are all added before its first packet: sound waits for a frame
        self._pending_audio: deque[tuple[np.ndarray, float]] = deque(maxlen=PENDING_AUDIO_CHUNKS)
        self._first_ms: float | None = None  # the file's 0, fixed by the first frame
        self._first_audio_ms: float | None = None  # when the first sound waiting for it played
        self._last_pts = -1
        self._audio_end = 0  # samples
        self.frames = 0
        self.audio_samples = 0

    def write(self, image: np.ndarray, arrival_ms: float) -> None:
        """image: HxWx3 uint8 RGB; arrival_ms: when it was received (any monotonic ms clock)."""
        if self._stream is None:
            self._stream = self._open_stream(image.shape[1], image.shape[0])
            # the earlier of the first frame and the first sound: a frame may arrive before a
            # sound that was queued ahead of it, and neither may start before the file's 0
            first_audio = self._first_audio_ms
            self._first_ms = arrival_ms if first_audio is None else min(arrival_ms, first_audio)
            self._open_audio()
        assert self._first_ms is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = max(self._last_pts + 1, round(arrival_ms - self._first_ms))
        frame.time_base = fractions.Fraction(1, 1000)
        self._last_pts = frame.pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def write_audio(self, samples: np.ndarray, start_ms: float) -> None:
        """samples: int16 mono at 48 kHz, the first played at ``start_ms``; samples before
        the file's 0 or over the ones written before them are left out, gaps are silence."""
        if not self._audio:
            raise ValueError("this recorder was opened without audio (audio=True)")
        if self._audio_stream is None:
            if self._first_audio_ms is None:
                self._first_audio_ms = start_ms
            self._pending_audio.append((samples, start_ms))
            return
        self._encode_audio(samples, start_ms)

    def _open_audio(self) -> None:
        """Add the audio stream (with ``audio``) and write the sound that waited for it."""
        if not self._audio:
            return
        stream = self._container.add_stream("aac", rate=AUDIO_RATE)
        stream.layout = "mono"
        self._audio_stream = stream
        while self._pending_audio:
            self._encode_audio(*self._pending_audio.popleft())

    def _encode_audio(self, samples: np.ndarray, start_ms: float) -> None:
        assert self._first_ms is not None
        pts = round((start_ms - self._first_ms) * AUDIO_RATE / 1000)
        # each sample keeps its time: those before the file's 0 (a chunk begins up to a pull
        # before it is handed over, so it may begin before the frame that opened the file) or
        # over the ones written before them are left out
        samples = samples[max(0, self._audio_end - pts) :]
        pts = max(pts, self._audio_end)
        if not len(samples):
            return
        if self.audio_samples:  # a gap in the sound is written as silence: the track stays
            # continuous, so a player that plays it back to back keeps it beside the frames
            for gap in range(self._audio_end, pts, AUDIO_RATE):
                self._encode_audio_frame(np.zeros(min(AUDIO_RATE, pts - gap), np.int16), gap)
        self._encode_audio_frame(samples, pts)

    def _encode_audio_frame(self, samples: np.ndarray, pts: int) -> None:
        assert self._audio_stream is not None
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, np.int16)[None, :], format="s16", layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._audio_end = frame.pts + len(samples)
        for packet in self._audio_stream.encode(frame):
            self._container.mux(packet)
        self.audio_samples += len(samples)

    def _open_stream(self, width: int, height: int) -> av.video.stream.VideoStream:
        stream = self._container.add_stream("libx264", rate=round(self._fps))
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = fractions.Fraction(1, 1000)
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        stream.options = {"preset": "veryfast", "crf": "20"}
        return stream

    def close(self) -> None:
        if self._stream is None and self._pending_audio:  # sound, but never a frame
            self._first_ms = self._first_audio_ms
            self._open_audio()
        for stream in (self._stream, self._audio_stream):
            if stream is not None:
                for packet in stream.encode(None):
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
AUDIO_BACKLOG = 125  # sound chunks (one a frame of client.audio: 7.5 s) waiting, likewise

_Item = tuple[bool, np.ndarray, float]  # (is a frame, frame or samples, ms)


class OutputThread:
    """Records and/or shows received frames, and records sound, on one worker thread.

    ``put`` and ``put_audio`` never block: the recording keeps everything while at most
    ``backlog`` frames (``AUDIO_BACKLOG`` sound chunks) wait for the encoder; beyond that new
    ones are dropped, counted in ``dropped`` (``audio_dropped``). The window shows the newest
    waiting frame and skips older ones. ``close`` finishes the recording.
    """

    def __init__(
        self, recorder: Mp4Recorder | None, window: Window | None, backlog: int = RECORD_BACKLOG
    ) -> None:
        if backlog < 1:
            raise ValueError(f"backlog must be >= 1, got {backlog}")
        self.recorder = recorder
        self.window = window
        self.dropped = 0
        self.audio_dropped = 0
        self._limits = {True: backlog, False: AUDIO_BACKLOG}
        self._waiting = {True: 0, False: 0}
        self._lock = threading.Lock()
        self._items: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="output", daemon=True)
        self._thread.start()

    def put(self, image: np.ndarray, arrival_ms: float) -> None:
        """image: HxWx3 uint8 RGB, kept as is (the caller must not change it afterwards)."""
        if not self._enqueue((True, image, arrival_ms)):
            self.dropped += 1

    def put_audio(self, samples: np.ndarray, start_ms: float) -> None:
        """samples: int16 mono at 48 kHz, the first played at ``start_ms``; recorded only
        (a recorder opened with ``audio``)."""
        if self.recorder is not None and not self._enqueue((False, samples, start_ms)):
            self.audio_dropped += 1

    def _enqueue(self, item: _Item) -> bool:
        with self._lock:
            if self._waiting[item[0]] >= self._limits[item[0]]:
                return False
            self._waiting[item[0]] += 1
        self._items.put_nowait(item)
        return True

    def _run(self) -> None:
        unshown: np.ndarray | None = None
        while (item := self._items.get()) is not None:
            is_frame, data, at_ms = item
            with self._lock:
                self._waiting[is_frame] -= 1
                newest = self._waiting[True] == 0
            if not is_frame:
                assert self.recorder is not None
                self.recorder.write_audio(data, at_ms)
                continue
            unshown = data
            if self.recorder is not None:
                self.recorder.write(unshown, at_ms)
            if self.window is not None and newest:
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
        if self.dropped or self.audio_dropped:
            logger.warning(
                "output: %d frames and %d sound chunks dropped (the recorder fell behind)",
                self.dropped,
                self.audio_dropped,
            )

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._items.put(None)
            self._thread.join()
