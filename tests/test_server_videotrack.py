from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from pipeline.protocol import PTS_PER_MS, is_repeat
from pipeline.renderworker import FrameMeta
from server.videotrack import RenderedVideoTrack

pytestmark = pytest.mark.timeout(60)


def meta(seq: int) -> FrameMeta:
    return FrameMeta(seq=seq, capture_ms=seq * 40, prompt_id=0, render_ms=1.0)


def image(value: int) -> np.ndarray:
    return np.full((16, 16, 3), value, np.uint8)


async def test_track_sends_the_newest_frame_then_one_repeat() -> None:
    sent: list[tuple[int, int]] = []
    track = RenderedVideoTrack(on_frame_sent=lambda m, pts: sent.append((m.seq, pts)))
    track.push(image(10), meta(1))
    track.push(image(20), meta(2))  # replaces frame 1 before it went out
    first = await track.recv()
    assert first.to_ndarray(format="rgb24")[0, 0, 0] == 20
    assert sent == [(2, 0)] and track.frames_superseded == 1
    repeat = await track.recv()  # releases frame 2 at the viewer; no metadata for it
    assert first.pts is not None and not is_repeat(first.pts)  # an even millisecond
    assert repeat.pts is not None and repeat.pts > first.pts and is_repeat(repeat.pts)  # odd
    assert repeat.to_ndarray(format="rgb24")[0, 0, 0] == 20 and len(sent) == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(track.recv(), 0.2)  # nothing new: wait, do not resend
    track.push(image(30), meta(3))
    third = await track.recv()
    assert third.to_ndarray(format="rgb24")[0, 0, 0] == 30
    assert third.pts is not None and third.pts % PTS_PER_MS == 0 and third.pts > repeat.pts
    assert not is_repeat(third.pts)
    assert track.frames_sent == 2
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()
