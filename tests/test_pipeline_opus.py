from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from av import AudioFrame, CodecContext

from pipeline.opus import (
    OPUS_BITRATE,
    OPUS_FRAME_MS,
    OPUS_LOOKAHEAD_SAMPLES,
    ImmediateAudioBuffer,
    OpusPackets,
    mono_samples,
    shorten_audio_jitter,
)


def released(buffer: JitterBuffer, sequence: list[int]) -> list[int]:
    """Which packets (by number) come out as 40 ms Opus packets numbered ``sequence`` go in."""
    out = []
    for k in sequence:
        packet = RtpPacket(sequence_number=k, timestamp=1920 * k, payload=b"x")
        packet._data = packet.payload  # what aiortc's receiver sets on a depacketized packet
        _, frame = buffer.add(packet)
        out.append(-1 if frame is None else frame.timestamp // 1920)
    return out


async def test_an_audio_receiver_decodes_each_packet_as_it_arrives() -> None:
    pc = RTCPeerConnection()
    audio = pc.addTransceiver("audio", direction="recvonly")
    video = pc.addTransceiver("video", direction="recvonly")
    before = audio.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert released(before, list(range(6))) == [-1, -1, -1, -1, 0, 1]  # aiortc's: 4 behind
    assert shorten_audio_jitter(audio)
    after = audio.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert isinstance(after, ImmediateAudioBuffer)
    # at once; a repeated packet, or one older than a packet handed on, is dropped
    sequence = [0, 1, 3, 2, 3, 4, 65535 + 5, 6]  # (65535 + 5: a number from before 0)
    assert released(after, [k % 65536 for k in sequence]) == [0, 1, 3, -1, -1, 4, -1, 6]
    assert not shorten_audio_jitter(video)
    await pc.close()


def test_a_decoded_opus_frame_holds_the_sound_sent_a_lookahead_earlier() -> None:
    """Through aiortc's own Opus encoder and decoder: a burst sent from pts 4800 on is heard
    from pts 4800 + OPUS_LOOKAHEAD_SAMPLES."""
    encoder, decoder = OpusEncoder(), OpusDecoder()
    sent = np.zeros(48 * 1000, np.int16)
    sent[4800:9600] = (np.sin(np.arange(4800) * 2 * np.pi * 440 / 48000) * 10000).astype(np.int16)
    heard = np.zeros(2 * len(sent), np.int16)
    for k in range(len(sent) // 960):
        frame = AudioFrame.from_ndarray(sent[None, k * 960 : (k + 1) * 960], layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, k * 960, Fraction(1, 48000)
        payloads, timestamp = encoder.encode(frame)
        for payload in payloads:
            for out in decoder.decode(JitterFrame(payload, timestamp)):
                stereo = out.to_ndarray().reshape(-1, 2)
                heard[out.pts : out.pts + len(stereo)] = stereo[:, 0]
    onset = int(np.flatnonzero(np.abs(heard) > 2000)[0])
    assert abs(onset - (4800 + OPUS_LOOKAHEAD_SAMPLES)) <= 10


async def test_opus_packets_are_mono_at_the_set_rate_and_stamped_less_the_lookahead() -> None:
    opus = OpusPackets()
    frame_samples = OPUS_FRAME_MS * 48
    packets = []
    for k in range(25):  # 1 s of a stereo tone, as aiortc's decoder gives frames
        t = np.arange(frame_samples * k, frame_samples * (k + 1))
        tone = (np.sin(t * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(np.repeat(tone, 2)[None, :], layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, t[0], Fraction(1, 48000)
        packet = await opus.next(frame)
        assert packet is not None
        packets.append(packet)
    expected = [frame_samples * k - OPUS_LOOKAHEAD_SAMPLES for k in range(25)]
    assert [p.pts for p in packets] == expected
    kbps = sum(p.size for p in packets) * 8 / 1000
    assert 15 < kbps < 36  # about OPUS_BITRATE (a pure tone costs a little more), not 96
    assert OPUS_BITRATE == 24_000
    assert all(bytes(p)[0] & 0x04 == 0 for p in packets)  # the TOC byte's stereo flag: mono
    decoder = CodecContext.create("libopus", "r")
    heard = np.concatenate([mono_samples(f) for p in packets for f in decoder.decode(p)])
    assert np.abs(heard).max() == pytest.approx(8000, rel=0.15)  # the mean of the channels


def test_stereo_frames_are_mixed_to_mono() -> None:
    left, right = np.full(960, 1000, np.int16), np.full(960, 3000, np.int16)
    packed = np.stack([left, right], axis=1).reshape(1, -1)
    frame = AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
    assert np.array_equal(mono_samples(frame), np.full(960, 2000, np.int16))
