from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from pipeline.audiojitter import AUDIO_PREFETCH, shorten_audio_jitter


def released(buffer: JitterBuffer, packets: int) -> list[int]:
    """Which packets (by timestamp) come out as each of ``packets`` 20 ms Opus packets goes in."""
    out = []
    for k in range(packets):
        packet = RtpPacket(sequence_number=k, timestamp=960 * k, payload=b"x")
        packet._data = packet.payload  # what aiortc's receiver sets on a depacketized packet
        _, frame = buffer.add(packet)
        out.append(-1 if frame is None else frame.timestamp // 960)
    return out


async def test_an_audio_receiver_decodes_a_frame_as_soon_as_the_next_arrives() -> None:
    pc = RTCPeerConnection()
    audio = pc.addTransceiver("audio", direction="recvonly")
    video = pc.addTransceiver("video", direction="recvonly")
    before = audio.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert released(before, 6) == [-1, -1, -1, -1, 0, 1]  # aiortc's: 4 frames (80 ms) behind
    assert shorten_audio_jitter(audio)
    after = audio.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert AUDIO_PREFETCH == 1 and after.capacity == before.capacity
    assert released(after, 6) == [-1, 0, 1, 2, 3, 4]  # one frame (20 ms) behind
    assert not shorten_audio_jitter(video)
    await pc.close()
