"""A call's sound through aiortc, on both hops: how it is encoded, buffered and decoded.

Encoding: ``OpusPackets`` encodes 20 ms frames on a worker thread into Opus packets (mono,
``OPUS_BITRATE``) that a track hands to aiortc ready-made. Given frames, aiortc would encode
them itself at 96 kbps stereo, and first measure each one's level in a pure-Python loop over its
samples on the event loop (about 1 ms a frame, 50 frames a second per track): with two tracks
that starved a two-core call of its frame rate.

Delay: libopus' encoder looks ahead ``OPUS_LOOKAHEAD_SAMPLES`` (6.5 ms at 48 kHz), and aiortc's
RTP path does not trim it, so a decoded frame at pts ``p`` holds the sound sent at pts
``p - OPUS_LOOKAHEAD_SAMPLES``: whoever maps a received pts to a capture time subtracts it (the
server for the sender's hop, the viewer for the server's).

Jitter buffer: aiortc decodes a received Opus frame only once 4 more have arrived
(``JitterBuffer(capacity=16, prefetch=4)``): 80 ms a hop, 160 ms from sender to viewer through
the server, more than the face's whole capture → shown latency on an idle loopback, and the
viewer can delay sound but not hurry it. ``shorten_audio_jitter`` gives an audio receiver a
buffer that decodes a frame once the next one has arrived (``AUDIO_PREFETCH``): 20 ms a hop.
The price: a packet that arrives more than one frame late is dropped (20 ms of silence)
instead of waiting in line. aiortc has no option for it, so this replaces its private buffer
before any packet arrives; where a version of aiortc keeps it elsewhere, nothing changes and it
says so.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque

import av
from aiortc import RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer

logger = logging.getLogger(__name__)

OPUS_RATE = 48_000  # samples a second; pts count 1/48000 s
OPUS_BITRATE = 24_000  # bits a second, mono speech
OPUS_LOOKAHEAD_SAMPLES = 312  # 6.5 ms at 48 kHz
AUDIO_PREFETCH = 1  # frames that must follow one before it is decoded
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
    setattr(
        transceiver.receiver,
        _BUFFER,
        JitterBuffer(capacity=buffer.capacity, prefetch=AUDIO_PREFETCH),
    )
    return True


class OpusPackets:
    """Frames in (s16 mono or stereo, 48 kHz, pts in 1/48000 s), Opus packets out: ``next``
    encodes on a worker thread and returns the next packet (libopus gives one per 20 ms).

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
        self.codec.options = {"application": "voip"}
        self._mono = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
        self._packets: deque[av.Packet] = deque()

    def encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        """Encode one frame now (a worker thread's job): its packets, maybe none."""
        packets = []
        for mono in self._mono.resample(frame):
            packets += self.codec.encode(mono)
        return packets

    async def next(self, frame: av.AudioFrame) -> av.Packet | None:
        """The next packet once ``frame`` is encoded too (None while libopus holds them all)."""
        self._packets.extend(await asyncio.to_thread(self.encode, frame))
        return self._packets.popleft() if self._packets else None
