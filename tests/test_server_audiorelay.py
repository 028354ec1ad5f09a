from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from pipeline.opus import OPUS_LOOKAHEAD_SAMPLES
from server.audiorelay import ForwardedAudioTrack, IncomingAudio


def frame(pts: int, value: int = 100) -> AudioFrame:
    out = AudioFrame.from_ndarray(np.full((1, 1920), value, np.int16), layout="stereo")
    out.sample_rate, out.pts = 48000, pts
    return out


class ListTrack:
    kind = "audio"

    def __init__(self, frames: list[AudioFrame]) -> None:
        self.frames = frames

    async def recv(self) -> AudioFrame:
        if not self.frames:
            raise MediaStreamError
        return self.frames.pop(0)


async def test_incoming_frames_get_their_capture_time_once_the_sender_said_it() -> None:
    incoming = IncomingAudio()
    forwarded: list[tuple[int, float]] = []
    incoming.sink = lambda f, capture_ms: forwarded.append((f.pts, capture_ms))
    frames = [frame(k * 960) for k in range(5)]
    await incoming.run(ListTrack(frames[:2]))  # type: ignore[arg-type]
    assert incoming.unanchored == 2 and not forwarded
    incoming.started(5000.0)
    await incoming.run(ListTrack(frames[2:]))  # type: ignore[arg-type]
    lag_ms = OPUS_LOOKAHEAD_SAMPLES / 48  # a decoded frame's sound was sent this much earlier
    assert forwarded == [(1920 + 960 * k, 5040 + 20 * k - lag_ms) for k in range(3)]
    assert incoming.frames == 3


async def test_forwarded_frames_are_renumbered_and_anchored_where_their_timing_changes() -> None:
    anchors: list[tuple[int, int]] = []
    track = ForwardedAudioTrack(on_anchor=lambda pts, ms: anchors.append((pts, ms)))
    # 20 ms apart, then a frame lost on the way (40 ms), then back to 20 ms apart
    for capture_ms in (7000.0, 7020.0, 7040.0, 7080.0, 7100.0):
        track.put(frame(0), capture_ms)
    out = [await track.recv() for _ in range(5)]  # Opus packets: pts less the lookahead
    assert [p.pts for p in out] == [960 * k - OPUS_LOOKAHEAD_SAMPLES for k in range(5)]
    assert anchors == [(0, 7000), (2880, 7080)]
    assert track.frames_sent == 5


async def test_the_forwarded_track_keeps_the_newest_frames_and_ends_when_stopped() -> None:
    anchors: list[tuple[int, int]] = []
    track = ForwardedAudioTrack(on_anchor=lambda pts, ms: anchors.append((pts, ms)), backlog=3)
    for k in range(5):
        track.put(frame(0, value=k), 1000.0 + 20 * k)
    assert track.frames_dropped == 2
    for _ in range(3):
        await track.recv()
    assert anchors == [(0, 1040)] and track.frames_sent == 3  # the two oldest went
    waiting = asyncio.create_task(track.recv())  # nothing sent: the viewer just waits
    await asyncio.sleep(0.05)
    assert not waiting.done()
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    with pytest.raises(ValueError, match="backlog must be >= 1"):
        ForwardedAudioTrack(backlog=0)
