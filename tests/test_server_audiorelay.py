from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from pipeline.opus import OPUS_FRAME_MS, OPUS_LOOKAHEAD_SAMPLES
from server.audiorelay import ForwardedAudioTrack, IncomingAudio

N = OPUS_FRAME_MS * 48  # samples a frame


def frame(pts: int, value: int = 100) -> AudioFrame:
    """A stereo frame of OPUS_FRAME_MS, as aiortc's decoder gives them."""
    out = AudioFrame.from_ndarray(np.full((1, 2 * N), value, np.int16), layout="stereo")
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
    frames = [frame(k * N) for k in range(5)]
    await incoming.run(ListTrack(frames[:2]))  # type: ignore[arg-type]
    assert incoming.unanchored == 2 and not forwarded
    incoming.started(5000.0)
    await incoming.run(ListTrack(frames[2:]))  # type: ignore[arg-type]
    lag_ms = OPUS_LOOKAHEAD_SAMPLES / 48  # a decoded frame's sound was sent this much earlier
    assert forwarded == [(N * (2 + k), 5000 + OPUS_FRAME_MS * (2 + k) - lag_ms) for k in range(3)]
    assert incoming.frames == 3


async def test_forwarded_frames_are_renumbered_and_anchored_where_their_timing_changes() -> None:
    anchors: list[tuple[int, int]] = []
    track = ForwardedAudioTrack(on_anchor=lambda pts, ms: anchors.append((pts, ms)))
    track.put(frame(0), 6000.0)  # before the viewer's channels are open: dropped
    track.connected.set()
    # a frame apart, then a frame lost on the way, then a frame apart again
    for k in (0, 1, 2, 4, 5):
        track.put(frame(0), 7000.0 + OPUS_FRAME_MS * k)
    out = [await track.recv() for _ in range(5)]  # Opus packets: pts less the lookahead
    assert [p.pts for p in out] == [N * k - OPUS_LOOKAHEAD_SAMPLES for k in range(5)]
    assert anchors == [(0, 7000), (3 * N, 7000 + 4 * OPUS_FRAME_MS)]
    assert track.frames_sent == 5


async def test_the_forwarded_track_keeps_the_newest_frames_and_ends_when_stopped() -> None:
    anchors: list[tuple[int, int]] = []
    track = ForwardedAudioTrack(on_anchor=lambda pts, ms: anchors.append((pts, ms)), backlog=3)
    track.connected.set()
    for k in range(5):
        track.put(frame(0, value=k), 1000.0 + OPUS_FRAME_MS * k)
    assert track.frames_dropped == 2
    for _ in range(3):
        await track.recv()
    # the two oldest went
    assert anchors == [(0, 1000 + 2 * OPUS_FRAME_MS)] and track.frames_sent == 3
    waiting = asyncio.create_task(track.recv())  # nothing sent: the viewer just waits
    await asyncio.sleep(0.05)
    assert not waiting.done()
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    with pytest.raises(ValueError, match="backlog must be >= 1"):
        ForwardedAudioTrack(backlog=0)
