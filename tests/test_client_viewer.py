"""The viewer pairs each video frame with its metadata, in either order, within bounds, and
hands the other's sound to the recording and the speaker."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from client.audio import sound_devices
from client.config import CallConfig
from client.connection import ServerClock
from client.viewer import MATCH_BUFFER, Viewer
from pipeline import protocol
from pipeline.protocol import PTS_PER_MS
from tests.fakesound import FakeSoundDevice


class StoppedClock(ServerClock):
    """The call clock at a time the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.at_ms = 0.0

    def now_ms(self) -> float:
        return self.at_ms


class Track:
    """A video track that delivers the given frames, then ends."""

    kind = "video"

    def __init__(self, frames: list[tuple[VideoFrame, float]], clock: StoppedClock) -> None:
        self._frames = frames
        self._clock = clock

    async def recv(self) -> VideoFrame:
        if not self._frames:
            raise MediaStreamError
        frame, arrival_ms = self._frames.pop(0)
        self._clock.at_ms = arrival_ms
        return frame


def video_frame(value: int, pts_ms: int) -> VideoFrame:
    frame = VideoFrame.from_ndarray(np.full((16, 16, 3), value, np.uint8), format="rgb24")
    frame.pts = pts_ms * PTS_PER_MS
    return frame


def meta(pts_ms: int, seq: int, capture_ms: int) -> dict[str, Any]:
    return {"pts": pts_ms * PTS_PER_MS, "seq": seq, "capture_ms": capture_ms, "prompt_id": 0}


def viewer(tmp_path: Path) -> tuple[Viewer, StoppedClock]:
    clock = StoppedClock()
    config = CallConfig(server="", room="", token="")
    return Viewer(config, clock), clock


def test_frames_show_on_arrival_and_pair_with_metadata_in_either_order(tmp_path: Path) -> None:
    seen, clock = viewer(tmp_path)
    seen.on_frame_meta({**meta(0, 7, 1000), "concealed": 0})  # metadata first
    repeat = video_frame(50, 1)  # the server's repeat: an odd millisecond
    frames = [(video_frame(50, 0), 1080.0), (repeat, 1085.0), (video_frame(90, 40), 1130.0)]
    asyncio.run(seen.receive(Track(frames, clock)))
    assert [f.seq for f in seen.shown] == [7]  # the second frame's latency waits for metadata
    assert seen.last_shown_image is not None and seen.last_shown_image[0, 0, 0] == 90  # shown
    assert seen.frames_received == 2 and seen.first_displayed_ms == 1080.0  # no repeat
    seen.on_frame_meta({**meta(40, 8, 1040), "concealed": 1})
    assert [(f.seq, f.latency_ms, f.concealed) for f in seen.shown] == [
        (7, 80.0, False),
        (8, 90.0, True),
    ]
    report = protocol.parse_message(seen.report())
    assert report["latency_p50_ms"] == 85.0


def test_metadata_without_frames_is_kept_within_bounds(tmp_path: Path) -> None:
    seen, _ = viewer(tmp_path)
    for index in range(MATCH_BUFFER + 10):
        seen.on_frame_meta({**meta(index * 40, index, index * 40), "concealed": 0})
    assert len(seen._meta) == MATCH_BUFFER
    assert min(seen._meta) == 10 * 40  # the oldest went first


class AudioTrack:
    """The other's audio track: ``count`` 20 ms frames of a constant level, then its end."""

    kind = "audio"

    def __init__(self, count: int, level: int) -> None:
        self.frames = []
        for k in range(count):
            frame = AudioFrame.from_ndarray(np.full((1, 960), level, np.int16), layout="mono")
            frame.sample_rate, frame.pts = 48000, k * 960
            self.frames.append(frame)

    async def recv(self) -> AudioFrame:
        await asyncio.sleep(0.02)
        if not self.frames:
            raise MediaStreamError
        return self.frames.pop(0)


async def test_with_show_the_others_sound_goes_to_the_speaker_and_the_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSoundDevice()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    sound_devices.cache_clear()
    clock = ServerClock()
    record = tmp_path / "seen.mp4"
    config = CallConfig(server="", room="", token="", record=record, show=True)
    seen = Viewer(config, clock)
    (stream,) = fake.streams  # the speaker
    seen.display(np.zeros((16, 16, 3), np.uint8), clock.now_ms())
    seen.audio.playout.anchor(0, clock.now_ms())
    await seen.audio.run(AudioTrack(25, level=5000))  # type: ignore[arg-type]
    played = np.zeros((48_000, 1), np.int16)
    stream.callback(played, len(played), None, None)  # the device asks for 1 s
    await seen.close()
    sound_devices.cache_clear()
    assert (played == 5000).sum() > 10 * 960 and stream.closed
    with av.open(str(record)) as container:
        recorded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert (np.abs(recorded - 5000 / 32768) < 0.02).sum() > 10 * 960
    # without --show no speaker is opened
    Viewer(CallConfig(server="", room="", token=""), clock)
    assert len(fake.streams) == 1
