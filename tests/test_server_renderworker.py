from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from codec import DecodedFrame
from models import MotionExtractor, Renderer
from server.renderworker import (
    NO_STYLE_ID,
    PTS_PER_MS,
    FrameMeta,
    RenderedVideoTrack,
    RenderWorker,
    frame_key,
)
from tests.tinycall import write_styled_checkpoint

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
    assert repeat.pts is not None and repeat.pts > 0 and repeat.pts % PTS_PER_MS == 0
    assert repeat.to_ndarray(format="rgb24")[0, 0, 0] == 20 and len(sent) == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(track.recv(), 0.2)  # nothing new: wait, do not resend
    track.push(image(30), meta(3))
    assert (await track.recv()).to_ndarray(format="rgb24")[0, 0, 0] == 30
    assert track.frames_sent == 2
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_frame_key_absorbs_one_tick_of_rounding() -> None:
    assert frame_key(7 * PTS_PER_MS - 1) == frame_key(7 * PTS_PER_MS) == 7


def decoded(seq: int, features: np.ndarray) -> DecodedFrame:
    return DecodedFrame(seq, seq * 40, 0, seq == 0, features)


async def test_worker_renders_only_the_newest_frame_in_the_active_style(tmp_path: Path) -> None:
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    features = MotionExtractor("tiny", checkpoint).extract(face)
    worker = RenderWorker(Renderer("tiny", checkpoint), name="test")
    rendered: list[tuple[np.ndarray, FrameMeta]] = []
    worker.sink = lambda img, m: rendered.append((img, m))
    worker.start()

    worker.submit(decoded(0, features))
    await asyncio.sleep(0.1)
    assert worker.frames_without_reference == 1 and not rendered

    await worker.set_reference(face)
    for seq in range(1, 6):  # faster than the worker can look: only the newest survives
        worker.submit(decoded(seq, features))
    await asyncio.wait_for(_until(lambda: len(rendered) == 1), 10)
    assert rendered[0][1].seq == 5 and rendered[0][1].prompt_id == NO_STYLE_ID
    assert worker.frames_stale == 4

    active: list[int] = []
    worker.on_style_active = active.append
    worker.set_prompt(7, "comic")
    await asyncio.wait_for(_until(lambda: active == [7]), 10)
    worker.submit(decoded(6, features))
    await asyncio.wait_for(_until(lambda: len(rendered) == 2), 10)
    styled, unstyled = rendered[1][0].astype(float), rendered[0][0].astype(float)
    assert rendered[1][1].prompt_id == 7 and styled.mean() > unstyled.mean() + 40

    await worker.close()
    assert worker.stats()["frames_rendered"] == 2


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    while not condition():
        await asyncio.sleep(0.01)
