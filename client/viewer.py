"""What a participant sees: the other's cartoon as the server renders it, measured frame by frame.

The server sends the rendered face as a video track and, on ``stats``, the metadata of each
rendered frame (sequence number, capture time at the sender, prompt id, whether it was
concealed) in batches (``frames`` messages) keyed by the frame's pts
(``pipeline.protocol.frame_key``). Each frame goes to the recorder and/or window (on an output
thread) when it arrives; the Viewer pairs it with its metadata (whichever comes first waits, at
most ``MATCH_BUFFER`` of each), so every shown frame has its end-to-end latency: arrival minus
capture time, both on the server's call clock.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from client.audio import AudioSink, ReceivedAudio, open_speaker
from client.config import CallConfig
from client.connection import ServerClock
from client.recorder import Mp4Recorder, OutputThread, Window
from codec.packet import TIME_MODULUS, unwrap
from pipeline import protocol
from pipeline.meters import RateMeter, percentiles
from pipeline.protocol import frame_key, is_repeat

logger = logging.getLogger(__name__)

MATCH_BUFFER = 64  # frames / metadata kept while waiting for their counterpart


@dataclass
class ShownFrame:
    arrival_ms: float  # server call clock
    latency_ms: float
    seq: int
    prompt_id: int
    concealed: bool = False  # the server extrapolated the motion: that packet did not arrive


class Viewer:
    def __init__(self, config: CallConfig, clock: ServerClock) -> None:
        self.clock = clock
        recorder = Mp4Recorder(config.record, config.fps, audio=True) if config.record else None
        window = Window(f"cartooncodec {config.name}") if config.show else None
        self.output = OutputThread(recorder, window) if recorder or window else None
        # the other's sound, held back to match the face shown (client.audio), to the recording
        # and the speaker
        self.speaker = open_speaker() if config.show else None
        sinks: list[AudioSink] = []
        if recorder is not None and self.output is not None:
            sinks.append(self.output.put_audio)
        if self.speaker is not None:
            sinks.append(self.speaker.put)
        self.audio = ReceivedAudio(clock.now_ms, sinks)
        self.shown: list[ShownFrame] = []  # in arrival order
        self.shown_meter = RateMeter()
        self.frames_received = 0
        self.last_shown_image: np.ndarray | None = None
        self.first_displayed_ms: float | None = None  # the recording's 0 on the call clock
        self._meta: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._unmatched: OrderedDict[int, float] = OrderedDict()  # key -> arrival time

    async def receive(self, track: MediaStreamTrack) -> None:
        """Show each frame of the server's video track as it arrives, until the track ends;
        its latency is counted once its metadata is here too."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrival_ms = self.clock.now_ms()
            if not isinstance(frame, VideoFrame) or frame.pts is None:
                continue
            if is_repeat(frame.pts):  # the server's repeat of the frame just shown
                continue
            key = frame_key(frame.pts)
            self.frames_received += 1
            self.display(frame.to_ndarray(format="rgb24"), arrival_ms)
            meta = self._meta.pop(key, None)
            if meta is None:
                _put_bounded(self._unmatched, key, arrival_ms)
            else:
                self._count(arrival_ms, meta)

    def on_frame_meta(self, meta: dict[str, Any]) -> None:
        """One frame's entry of a ``frames`` message (``pipeline.protocol.frame_metas``)."""
        key = frame_key(meta["pts"])
        if key in self._unmatched:
            self._count(self._unmatched.pop(key), meta)
        else:
            _put_bounded(self._meta, key, meta)

    def show(self, image: np.ndarray, arrival_ms: float, meta: dict[str, Any]) -> None:
        """A frame and its metadata together (rendered here): displayed and counted."""
        self.display(image, arrival_ms)
        self._count(arrival_ms, meta)

    def display(self, image: np.ndarray, arrival_ms: float) -> None:
        """image: HxWx3 uint8 RGB that arrived at ``arrival_ms``: to the window/recording."""
        self.last_shown_image = image
        if self.first_displayed_ms is None:
            self.first_displayed_ms = arrival_ms
        if self.output is not None:
            self.output.put(image, arrival_ms)

    def _count(self, arrival_ms: float, meta: dict[str, Any]) -> None:
        capture_ms = unwrap(meta["capture_ms"] % TIME_MODULUS, round(arrival_ms), TIME_MODULUS)
        shown = ShownFrame(
            arrival_ms,
            arrival_ms - capture_ms,
            meta["seq"],
            meta["prompt_id"],
            meta["concealed"] == 1,
        )
        # in arrival order, though a batch of metadata may count an earlier frame later
        bisect.insort(self.shown, shown, key=lambda frame: frame.arrival_ms)
        self.shown_meter.add()
        self.audio.playout.video_shown(capture_ms, arrival_ms)

    def report(self) -> str:
        """The ``report`` message: what this viewer sees, for the server's stats."""
        recent = [f.latency_ms for f in self.shown[-50:]]
        p50 = percentiles(recent, (50,))[0]
        return protocol.encode_message(
            "report", fps_shown=self.shown_meter.per_second(), latency_p50_ms=p50
        )

    async def close(self) -> None:
        """Finish the recording, close the window and the speaker."""
        if self.speaker is not None:
            await asyncio.to_thread(self.speaker.close)
            if self.speaker.dropped:
                logger.info("speaker: %d samples dropped (it played slower)", self.speaker.dropped)
        if self.output is not None:
            await self.output.close()


def _put_bounded(table: OrderedDict[int, Any], key: int, value: Any) -> None:
    table[key] = value
    while len(table) > MATCH_BUFFER:
        table.popitem(last=False)
