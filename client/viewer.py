"""What a participant sees: the other's cartoon as the server renders it, measured frame by frame.

The server sends the rendered face as a video track and, on ``stats``, one ``frame`` message per
rendered frame (sequence number, capture time at the sender, prompt id, whether it was
concealed) keyed by the frame's pts (``pipeline.protocol.frame_key``). The Viewer pairs each
decoded video frame with its message (whichever comes first waits, at most ``MATCH_BUFFER`` of
each), so every shown frame has its end-to-end latency: arrival minus capture time, both on the
server's call clock. Shown frames go to the recorder and/or window on an output thread.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from client.config import CallConfig
from client.connection import ServerClock
from client.recorder import Mp4Recorder, OutputThread, Window
from codec.packet import TIME_MODULUS, unwrap
from pipeline import protocol
from pipeline.meters import RateMeter, percentiles
from pipeline.protocol import frame_key

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
        recorder = Mp4Recorder(config.record, config.fps) if config.record else None
        window = Window(f"cartooncodec {config.name}") if config.show else None
        self.output = OutputThread(recorder, window) if recorder or window else None
        self.shown: list[ShownFrame] = []
        self.shown_meter = RateMeter()
        self.frames_received = 0
        self.last_shown_image: np.ndarray | None = None
        self._meta: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._unmatched: OrderedDict[int, tuple[float, np.ndarray]] = OrderedDict()

    async def receive(self, track: MediaStreamTrack) -> None:
        """Show each frame of the server's video track until it ends."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrival_ms = self.clock.now_ms()
            if not isinstance(frame, VideoFrame) or frame.pts is None:
                continue
            self.frames_received += 1
            image = frame.to_ndarray(format="rgb24")
            key = frame_key(frame.pts)
            meta = self._meta.pop(key, None)
            if meta is None:
                _put_bounded(self._unmatched, key, (arrival_ms, image))
            else:
                self.show(image, arrival_ms, meta)

    def on_frame_meta(self, meta: dict[str, Any]) -> None:
        """A ``frame`` message (``pipeline.protocol``) about a rendered frame."""
        key = frame_key(meta["pts"])
        if key in self._unmatched:
            arrival_ms, image = self._unmatched.pop(key)
            self.show(image, arrival_ms, meta)
        else:
            _put_bounded(self._meta, key, meta)

    def show(self, image: np.ndarray, arrival_ms: float, meta: dict[str, Any]) -> None:
        """image: HxWx3 uint8 RGB that arrived at ``arrival_ms``; ``meta``: its frame message."""
        capture_ms = unwrap(meta["capture_ms"] % TIME_MODULUS, round(arrival_ms), TIME_MODULUS)
        self.shown.append(
            ShownFrame(
                arrival_ms,
                arrival_ms - capture_ms,
                meta["seq"],
                meta["prompt_id"],
                bool(meta["concealed"]),
            )
        )
        self.shown_meter.add()
        self.last_shown_image = image
        if self.output is not None:
            self.output.put(image, arrival_ms)

    def report(self) -> str:
        """The ``report`` message: what this viewer sees, for the server's stats."""
        recent = [f.latency_ms for f in self.shown[-50:]]
        p50 = percentiles(recent, (50,))[0]
        return protocol.encode_message(
            "report", fps_shown=self.shown_meter.per_second(), latency_p50_ms=p50
        )

    async def close(self) -> None:
        """Finish the recording and close the window."""
        if self.output is not None:
            await self.output.close()


def _put_bounded(table: OrderedDict[int, Any], key: int, value: Any) -> None:
    table[key] = value
    while len(table) > MATCH_BUFFER:
        table.popitem(last=False)
