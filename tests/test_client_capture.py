from __future__ import annotations

import asyncio
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from client.capture import (
    CaptureThread,
    Playhead,
    TalkingPortrait,
    VideoFile,
    open_source,
    read_image,
    synthetic_portrait_path,
)
from tests.looplag import LoopLag, SlowSource


def test_synthetic_portrait_ships_with_matplotlib() -> None:
    portrait = read_image(synthetic_portrait_path())
    assert portrait.ndim == 3 and portrait.shape[2] == 3 and portrait.dtype == np.uint8


def test_talking_portrait_moves_and_still_one_does_not() -> None:
    moving = open_source("synthetic", fps=25)
    frames = [moving.read() for _ in range(10)]
    assert np.abs(frames[9].astype(int) - frames[0].astype(int)).mean() > 1.0
    still = open_source("synthetic", fps=25, amplitude=0.0)
    first, later = still.read(), [still.read() for _ in range(5)][-1]
    assert np.array_equal(first, later)


def test_portrait_must_be_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="portrait must be HxWx3 uint8"):
        TalkingPortrait(np.zeros((8, 8), np.uint8), fps=25)


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not 'synthetic', a webcam index or an existing file"):
        open_source(str(tmp_path / "missing.mp4"), fps=25)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        open_source(str(broken), fps=25)


def write_clip(path: Path, count: int, fps: int = 10) -> None:
    """A video of ``count`` pictures whose grey level says which they are (80 × index)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 80, np.uint8), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_video_file_plays_in_real_time_and_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_clip(path, count=3)  # 10 fps: 300 ms
    now_ms = 5000.0
    source = open_source(str(path), fps=25, clock=lambda: now_ms)
    assert isinstance(source, VideoFile) and source.playhead.period_ms == pytest.approx(300)
    shown = []
    # the file starts at the first read; then each read shows the picture of the time elapsed,
    # whatever the reader's rate: the same one again, pictures skipped, and round again
    for elapsed_ms in [0, 40, 99, 110, 250, 310, 420, 1210, 1330]:
        now_ms = 5000.0 + elapsed_ms
        shown.append(round(source.read().mean() / 80))
    assert shown == [0, 0, 0, 1, 2, 0, 1, 0, 1]
    assert source.playhead.origin_ms == 5000.0
    source.close()
    # without a clock, the n-th read is at n / fps: at the file's rate, every picture in turn
    plain = open_source(str(path), fps=10)
    assert [round(plain.read().mean() / 80) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    plain.close()


@pytest.mark.parametrize("count", [0, 5])
def test_a_file_whose_frame_count_is_wrong_is_refused_or_holds_its_last_picture(
    count: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "clip.mp4"
    write_clip(path, count=3)  # says `count` pictures
    real_get = cv2.VideoCapture.get
    monkeypatch.setattr(
        cv2.VideoCapture,
        "get",
        lambda self, prop: count if prop == cv2.CAP_PROP_FRAME_COUNT else real_get(self, prop),
    )
    if count == 0:
        with pytest.raises(ValueError, match=f"cannot play video {path}: it says 0 frames"):
            open_source(str(path), fps=10)
        return
    now_ms = 0.0
    source = open_source(str(path), fps=10, clock=lambda: now_ms)
    shown = []
    for at_ms in [0.0, 250.0, 350.0, 480.0, 510.0, 620.0]:  # a 500 ms loop of 3 pictures
        now_ms = at_ms
        shown.append(round(source.read().mean() / 80))
    assert shown == [0, 2, 2, 2, 0, 1]
    source.close()


def test_the_playhead_starts_at_the_first_instant_asked() -> None:
    playhead = Playhead(period_ms=1000)
    assert playhead.position_ms(250.0) == 0 and playhead.origin_ms == 250.0
    assert playhead.position_ms(1700.0) == pytest.approx(450)
    assert playhead.position_ms(200.0) == pytest.approx(950)  # before the start: the loop before
    with pytest.raises(ValueError, match="period_ms must be > 0, got 0"):
        Playhead(0)


async def test_a_slow_source_does_not_block_the_event_loop() -> None:
    source = SlowSource(delay_s=0.2)
    capture = CaptureThread(source, fps=25.0)
    async with LoopLag() as lag:
        frames = [await capture.next() for _ in range(3)]
    await capture.close()
    # three reads of 200 ms each passed while the loop kept ticking every 10 ms
    assert [int(image[0, 0, 0]) for image, _ in frames] == [0, 1, 2]
    gaps = np.diff([t for _, t in frames])
    assert gaps.min() >= 0.19
    assert lag.ticks >= 20
    assert lag.max_s < 0.1  # a read() on the loop would make it late by 0.2 s
    assert source.closed


async def test_the_newest_frame_wins_when_the_consumer_falls_behind() -> None:
    source = SlowSource(delay_s=0.0)
    capture = CaptureThread(source, fps=100.0)
    first, _ = await capture.next()
    await asyncio.sleep(0.3)  # ~30 frames read meanwhile; only the newest is kept
    later, _ = await capture.next()
    await capture.close()
    assert int(first[0, 0, 0]) == 0
    assert int(later[0, 0, 0]) >= 10
    assert capture.dropped >= int(later[0, 0, 0]) - 1  # every frame between first and later


async def test_a_failing_read_is_raised_by_next_and_stops_the_thread() -> None:
    source = SlowSource(delay_s=0.0, fail_after=1)
    capture = CaptureThread(source, fps=100.0)
    image, _ = await capture.next()
    assert int(image[0, 0, 0]) == 0
    for _ in range(2):  # and on every later call
        with pytest.raises(EOFError, match="no more frames"):
            await capture.next()
    await capture.close()
    assert source.reads == 1 and source.closed


async def test_close_ends_the_thread_and_the_source_also_when_never_started() -> None:
    started, never = SlowSource(delay_s=0.05), SlowSource(delay_s=0.05)
    capture = CaptureThread(started, fps=25.0)
    await capture.next()
    await capture.close()
    reads = started.reads
    await asyncio.sleep(0.1)
    assert started.reads == reads and started.closed
    await CaptureThread(never, fps=25.0).close()
    assert never.reads == 0 and never.closed


def test_capture_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ValueError, match="fps must be > 0, got 0"):
        CaptureThread(SlowSource(0.0), fps=0)
