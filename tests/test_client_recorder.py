from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from client.recorder import Mp4Recorder, Window


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
