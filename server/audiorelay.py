"""Sound through the server: each participant's audio track, forwarded to the other one.

``IncomingAudio`` reads a participant's audio track (aiortc decodes the Opus) and stamps each
frame with its capture time on the call clock: the client's ``audio`` message says when its
track's pts 0 was captured, aiortc counts the received pts (1/48000 s) from the first packet,
and a decoded frame's sound lags its pts by Opus' lookahead (pipeline.opus). Frames go to
``sink``, the viewer's ``ForwardedAudioTrack``, which numbers them from pts 0 without gaps,
encodes them to Opus again (``pipeline.opus.OpusPackets``) for the viewer and calls
``on_anchor(pts, capture_ms)`` for the first frame and whenever the capture time of its frames
stops following their pts (a frame lost or dropped on the way): the participant sends that to
the viewer as an ``audio`` message, which is how the viewer learns each sample's capture time.

A participant that sends no audio leaves the viewer's track waiting (the viewer hears
nothing); frames that arrive before the ``audio`` message, which cannot be placed in time, are
dropped and counted. Nothing here grows without bound: the forwarded track holds at most
``backlog`` frames and drops the oldest.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque
from collections.abc import Callable

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, Packet

from pipeline.opus import OPUS_LOOKAHEAD_SAMPLES, OpusPackets, received_frames

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48_000  # aiortc's Opus clock: every received pts counts 1/48000 s
SAMPLES_PER_MS = SAMPLE_RATE // 1000
FORWARD_BACKLOG = 25  # frames (pipeline.opus.OPUS_FRAME_MS each: 1.5 s) waiting to be encoded
ANCHOR_TOLERANCE_MS = 1.0

AudioSink = Callable[[AudioFrame, float], None]  # (frame, capture ms on the call clock)


class IncomingAudio:
    """One participant's audio track in; each frame goes to ``sink`` with its capture time."""

    def __init__(self) -> None:
        self.origin_ms: float | None = None  # call-clock capture time of the sender's pts 0
        self.sink: AudioSink | None = None
        self.frames = 0
        self.unanchored = 0  # frames before the sender said when its pts 0 was

    def started(self, capture_ms: float) -> None:
        """The sender's ``audio`` message: its pts 0 was captured at ``capture_ms``."""
        self.origin_ms = capture_ms

    async def run(self, track: MediaStreamTrack) -> None:
        """Forward ``track`` until it ends."""
        async for received_pts, frame in received_frames(track):
            if self.origin_ms is None:
                self.unanchored += 1
                continue
            self.frames += 1
            if self.sink is not None:
                pts = received_pts - OPUS_LOOKAHEAD_SAMPLES  # the sender's pts of its sound
                self.sink(frame, self.origin_ms + pts / SAMPLES_PER_MS)


class ForwardedAudioTrack(MediaStreamTrack):
    """Outbound audio for one viewer: the other participant's frames, newest ``backlog`` kept,
    renumbered from pts 0 and encoded (pipeline.opus); ``on_anchor(pts, capture_ms)`` says
    where they sit in time."""

    kind = "audio"

    def __init__(
        self,
        on_anchor: Callable[[int, int], None] | None = None,
        backlog: int = FORWARD_BACKLOG,
    ) -> None:
        super().__init__()
        if backlog < 1:
            raise ValueError(f"backlog must be >= 1, got {backlog}")
        self.on_anchor = on_anchor
        self._frames: deque[tuple[AudioFrame, float]] = deque(maxlen=backlog)
        self._ready = asyncio.Event()
        # set once the viewer's channels are open: frames before are dropped, so the first
        # packet, from which the viewer counts pts, is not lost to a handshake under way
        self.connected = asyncio.Event()
        self._pts = 0
        self._offset_ms: float | None = None  # capture ms - pts ms of the last anchor
        self.frames_sent = 0
        self.frames_dropped = 0
        self.anchors = 0
        self._opus = OpusPackets()

    def put(self, frame: AudioFrame, capture_ms: float) -> None:
        if not self.connected.is_set():
            return
        if len(self._frames) == self._frames.maxlen:
            self.frames_dropped += 1
        self._frames.append((frame, capture_ms))
        self._ready.set()

    def stop(self) -> None:
        super().stop()
        self._ready.set()

    async def recv(self) -> Packet:
        """The next frame, as an Opus packet for aiortc (pipeline.opus)."""
        packet = None
        while packet is None:
            packet = await self._opus.next(await self._next_frame())
        return packet

    async def _next_frame(self) -> AudioFrame:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        frame, capture_ms = self._frames.popleft()
        offset_ms = capture_ms - self._pts / SAMPLES_PER_MS
        if self._offset_ms is None or abs(offset_ms - self._offset_ms) > ANCHOR_TOLERANCE_MS:
            self._offset_ms = offset_ms
            self.anchors += 1
            if self.on_anchor is not None:
                self.on_anchor(self._pts, round(capture_ms))
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._pts += frame.samples
        self.frames_sent += 1
        return frame
