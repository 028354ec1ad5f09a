"""How aiortc receives a call's sound (Opus), on both hops: its jitter buffer, its decoder's delay.

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

import logging

from aiortc import RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer

logger = logging.getLogger(__name__)

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
