from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np
import pytest

from client.recorder import Mp4Recorder, OutputThread, Window
from tests.looplag import LoopLag


def test_recording_keeps_every_frame_at_its_arrival_time(tmp_path: Path) -> None:
    recorder = Mp4Recorder(tmp_path / "out" / "call.mp4", fps=25)
    arrivals = [1000.0, 1040.0, 1100.0, 1100.2, 1300.0]  # irregular, one sub-millisecond gap
    for i, arrival in enumerate(arrivals):
        recorder.write(np.full((32, 32, 3), i * 50, np.uint8), arrival)
    recorder.close()
    with av.open(str(tmp_path / "out" / "call.mp4")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == len(arrivals) == recorder.frames
    times_ms = [round(float(f.time) * 1000) for f in frames]
    assert times_ms == [0, 40, 100, 101, 300]
    assert [round(f.to_ndarray(format="rgb24").mean() / 50) for f in frames] == [0, 1, 2, 3, 4]


def test_window_turns_itself_off_without_a_display() -> None:
    window = Window("test")
    window.show(np.zeros((8, 8, 3), np.uint8))  # headless OpenCV: warns once, no exception
    window.show(np.zeros((8, 8, 3), np.uint8))
    window.close()


class SlowRecorder(Mp4Recorder):
    """An encoder that takes ``delay_s`` a frame."""

    def __init__(self, path: Path, delay_s: float) -> None:
        super().__init__(path, fps=25)
        self.delay_s = delay_s

    def write(self, image: np.ndarray, arrival_ms: float) -> None:
        time.sleep(self.delay_s)
        super().write(image, arrival_ms)


class CountingWindow(Window):
    def __init__(self) -> None:
        super().__init__("test")
        self.shown: list[int] = []
        self.closed = False

    def show(self, image: np.ndarray) -> None:
        self.shown.append(int(image[0, 0, 0]))

    def close(self) -> None:
        self.closed = True


async def test_output_thread_records_every_frame_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    recorder = SlowRecorder(tmp_path / "call.mp4", delay_s=0.2)
    window = CountingWindow()
    output = OutputThread(recorder, window)
    async with LoopLag() as lag:
        for i in range(4):
            output.put(np.full((32, 32, 3), i * 50, np.uint8), 1000.0 + 40 * i)
            await asyncio.sleep(0.02)
        await output.close()
    assert lag.max_s < 0.1  # one write() on the loop would make it late by 0.2 s
    assert recorder.frames == 4 and output.dropped == 0
    with av.open(str(tmp_path / "call.mp4")) as container:
        frames = list(container.decode(video=0))
    assert [round(f.to_ndarray(format="rgb24").mean() / 50) for f in frames] == [0, 1, 2, 3]
    # the window skipped the frames that waited behind a newer one, and always shows the last
    assert window.shown[-1] == 150 and len(window.shown) < 4
    assert window.closed


async def test_output_thread_drops_new_frames_beyond_its_backlog(tmp_path: Path) -> None:
    recorder = SlowRecorder(tmp_path / "call.mp4", delay_s=0.3)
    output = OutputThread(recorder, None, backlog=2)
    for i in range(6):  # the first is being written, two wait, three find no room
        output.put(np.full((32, 32, 3), i, np.uint8), 40.0 * i)
        await asyncio.sleep(0.01)
    await output.close()
    assert (recorder.frames, output.dropped) == (3, 3)


def test_output_thread_refuses_an_empty_backlog() -> None:
    with pytest.raises(ValueError, match="backlog must be >= 1, got 0"):
        OutputThread(None, None, backlog=0)
