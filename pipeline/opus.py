"""A call's sound through aiortc, on both hops: how it is encoded, buffered and decoded.

Encoding: ``OpusPackets`` encodes frames of ``OPUS_FRAME_MS`` on a worker thread into Opus
packets (mono, ``OPUS_BITRATE``) that a track hands to aiortc ready-made. Given frames, aiortc
would encode them itself at 96 kbps stereo in 20 ms packets, and first measure each one's level
in a pure-Python loop over its samples on the event loop (about 1 ms a frame). 60 ms frames
make a third of the packets (17 a second a track), each of which costs Python time on the event
loop and hops between threads (in the demo, server and clients share one loop).

Delay: libopus' encoder looks ahead ``OPUS_LOOKAHEAD_SAMPLES`` (6.5 ms at 48 kHz), and aiortc's
RTP path does not trim it, so a decoded frame at pts ``p`` holds the sound sent at pts
``p - OPUS_LOOKAHEAD_SAMPLES``: whoever maps a received pts to a capture time subtracts it (the
server for the sender's hop, the viewer for the server's).

Jitter buffer: aiortc decodes a received Opus frame only once 4 more have arrived
(``JitterBuffer(capacity=16, prefetch=4)``): 4 frames a hop, twice from sender to viewer
through the server, more than the face's whole capture → shown latency on an idle loopback,
and the viewer can delay sound but not hurry it. ``shorten_audio_jitter`` gives an audio
receiver an ``ImmediateAudioBuffer``, which decodes each packet as it arrives (an Opus frame
is one packet). The price: a packet that arrives after a newer one is dropped (a frame of
silence) instead of put back in order. aiortc has no option for it, so this replaces its
private buffer before any packet arrives; where a version of aiortc keeps it elsewhere,
nothing changes and it says so.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

logger = logging.getLogger(__name__)

OPUS_RATE = 48_000  # samples a second; pts count 1/48000 s
OPUS_BITRATE = 24_000  # bits a second, mono speech
OPUS_FRAME_MS = 60  # one packet a frame: 17 packets a second a track
OPUS_LOOKAHEAD_SAMPLES = 312  # 6.5 ms at 48 kHz
_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # aiortc's name for it (1.9 .. 1.16)


def shorten_audio_jitter(transceiver: RTCRtpTransceiver) -> bool:
    """Give an audio transceiver's receiver (before its first packet) the short buffer; False
    for video, or where aiortc is not the one this was written for."""
    if transceiver.kind != "audio":
        return False
    buffer = getattr(transceiver.receiver, _BUFFER, None)
    if not isinstance(buffer, JitterBuffer):
        logger.info("audio jitter buffer left as aiortc made it (%s)", type(buffer).__name__)
        return False
    setattr(transceiver.receiver, _BUFFER, ImmediateAudioBuffer(buffer.capacity))
    return True


class ImmediateAudioBuffer(JitterBuffer):
    """An Opus frame is one RTP packet: hand each on to the decoder as it arrives, unless it
    is older than one already handed on (late, or repeated), which is dropped."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._newest: int | None = None  # sequence number of the newest packet handed on

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """(no picture loss to report, the packet's frame or None when it came too late)."""
        seq = packet.sequence_number
        if self._newest is not None and (
            seq == self._newest or uint16_add(seq, -self._newest) >= 0x8000
        ):
            return False, None
        self._newest = seq
        data: bytes = packet._data  # type: ignore[attr-defined]  # aiortc's depayloaded payload
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


def mono_samples(frame: av.AudioFrame) -> np.ndarray:
    """A decoded s16 frame (mono, or stereo packed as aiortc's Opus decoder gives it) as
    int16 mono samples, shape (frame.samples,)."""
    data = frame.to_ndarray().reshape(-1)
    channels = len(frame.layout.channels)
    if channels == 1:
        return data.astype(np.int16)
    return data.reshape(-1, channels).mean(axis=1).astype(np.int16)


async def received_frames(track: MediaStreamTrack) -> AsyncIterator[tuple[int, av.AudioFrame]]:
    """(pts, frame) for each decoded frame of a received audio track, until it ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, av.AudioFrame) and frame.pts is not None:
            yield frame.pts, frame


class OpusPackets:
    """Frames in (s16 mono or stereo, 48 kHz, pts in 1/48000 s), Opus packets out: ``next``
    encodes on a worker thread and returns the next packet (libopus gives one a frame of
    ``OPUS_FRAME_MS``).

    A packet's pts is its frame's minus the lookahead, as libopus stamps it; aiortc turns it
    into the RTP timestamp as it is, so the receiver's pts count from the first packet alike.
    """

    def __init__(self, bitrate: int = OPUS_BITRATE) -> None:
        self.codec = av.CodecContext.create("libopus", "w")
        self.codec.sample_rate = OPUS_RATE
        self.codec.layout = "mono"
        self.codec.format = "s16"
        self.codec.bit_rate = bitrate
        self.codec.time_base = fractions.Fraction(1, OPUS_RATE)
        self.codec.options = {"application": "voip", "frame_duration": str(OPUS_FRAME_MS)}
        self._packets: deque[av.Packet] = deque()

    def encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        """Encode one frame now (a worker thread's job; stereo is mixed to mono by the mean of
        its channels): its packets, maybe none."""
        mono = av.AudioFrame.from_ndarray(mono_samples(frame)[None, :], layout="mono")
        mono.sample_rate, mono.pts, mono.time_base = frame.sample_rate, frame.pts, frame.time_base
        return list(self.codec.encode(mono))

    async def next(self, frame: av.AudioFrame | Callable[[], av.AudioFrame]) -> av.Packet | None:
        """The next packet once ``frame`` is encoded too, on the worker thread, which also
        makes the frame when given a function for it (None while libopus holds them all)."""
        self._packets.extend(await asyncio.to_thread(self._encode_made, frame))
        return self._packets.popleft() if self._packets else None

    def _encode_made(self, frame: av.AudioFrame | Callable[[], av.AudioFrame]) -> list[av.Packet]:
        return self.encode(frame if isinstance(frame, av.AudioFrame) else frame())
