from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np
import pytest

from client.recorder import AUDIO_BACKLOG, Mp4Recorder, OutputThread, Window
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

    def __init__(self, path: Path, delay_s: float, audio: bool = False) -> None:
        super().__init__(path, fps=25, audio=audio)
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


def tone(count: int, level: int = 8000) -> np.ndarray:
    return (np.sin(np.arange(count) * 2 * np.pi * 440 / 48000) * level).astype(np.int16)


def decoded_audio(path: Path) -> tuple[int, float, np.ndarray]:
    """(sample rate, start s, mono float samples) of the file's audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    return stream.sample_rate, float(frames[0].time), samples


def test_sound_is_recorded_at_the_time_it_played_beside_the_frames(tmp_path: Path) -> None:
    recorder = Mp4Recorder(tmp_path / "call.mp4", fps=25, audio=True)
    # 200 ms of silence before the first frame, then 1 s of sound: 300 ms silent, 200 ms tone,
    # 500 ms silent; one chunk overlaps its predecessor by 5 ms: those 5 ms are left out,
    # and the 5 ms after it are silence
    recorder.write_audio(np.zeros(9600, np.int16), 1000.0)
    for i in range(10):
        recorder.write(np.full((32, 32, 3), i * 20, np.uint8), 1200.0 + 100 * i)
    for start in range(0, 48000, 960):
        at_ms = 1200.0 + start / 48 - (5 if start == 960 * 10 else 0)
        chunk = tone(960) if 300 <= start / 48 < 500 else np.zeros(960, np.int16)
        recorder.write_audio(chunk, at_ms)
    recorder.close()
    assert recorder.audio_samples == 9600 + 48000
    rate, start_s, samples = decoded_audio(tmp_path / "call.mp4")
    assert rate == 48000 and start_s == 0.0
    assert abs(len(samples) - (9600 + 48000)) <= 2048  # the AAC frame's padding at the end
    loud = np.flatnonzero(np.abs(samples) > 0.1)  # the tone's level is 0.24
    # 200 ms of silence, then the tone from 300 to 500 ms into the sound (AAC's delay < 1 ms)
    assert abs(loud[0] / 48 - 500) < 3 and abs(loud[-1] / 48 - 700) < 3
    with av.open(str(tmp_path / "call.mp4")) as container:
        first_frame = next(container.decode(video=0))
    assert round(float(first_frame.time) * 1000) == 200


def test_a_gap_in_the_sound_is_recorded_as_silence(tmp_path: Path) -> None:
    """The playout skips ahead after a stall: the samples after the gap keep their time in the
    file even for a player that plays the track back to back (the call's sound test measures
    the file that way; a gap left as a jump of timestamps shifted every burst after it)."""
    recorder = Mp4Recorder(tmp_path / "call.mp4", fps=25, audio=True)
    recorder.write(np.zeros((32, 32, 3), np.uint8), 1000.0)
    for k in range(100):  # 20 ms chunks; 55 ms missing after the 25th; a tone in the 40th
        at_ms = 1000.0 + 20 * k + (55 if k >= 25 else 0)
        recorder.write_audio(tone(960) if k == 40 else np.zeros(960, np.int16), at_ms)
    recorder.close()
    assert recorder.audio_samples == 100 * 960 + 55 * 48
    _, start_s, samples = decoded_audio(tmp_path / "call.mp4")
    loud = np.flatnonzero(np.abs(samples) > 0.1)
    assert start_s == 0.0 and abs(loud[0] / 48 - (800 + 55)) < 2
    with av.open(str(tmp_path / "call.mp4")) as container:
        frames = list(container.decode(audio=0))
    assert all(b.pts == a.pts + a.samples for a, b in zip(frames, frames[1:], strict=False))


def test_a_frame_that_arrived_before_the_first_sound_keeps_its_time(tmp_path: Path) -> None:
    """The output thread may take a sound queued ahead of a frame that arrived earlier: the
    file's 0 is the earlier of the two, so the frame is not moved onto the sound."""
    recorder = Mp4Recorder(tmp_path / "call.mp4", fps=25, audio=True)
    recorder.write_audio(tone(4800), 1040.0)  # played at 1040 ms, handed over first
    recorder.write(np.zeros((32, 32, 3), np.uint8), 1000.0)  # arrived at 1000 ms
    recorder.close()
    _, start_s, samples = decoded_audio(tmp_path / "call.mp4")
    loud = np.flatnonzero(np.abs(samples) > 0.1)
    assert abs(start_s * 1000 + loud[0] / 48 - 40) < 3  # the sound 40 ms after the frame
    with av.open(str(tmp_path / "call.mp4")) as container:
        assert round(float(next(container.decode(video=0)).time) * 1000) == 0


def test_sound_handed_over_after_the_first_frame_but_played_before_it_is_cut_there(
    tmp_path: Path,
) -> None:
    """A chunk begins up to a pull before it is handed over: the part before the file's 0 is
    left out, and the rest keeps its time (it used to be moved to 0, and all the sound with
    it, 50 ms late in the call's sound test)."""
    recorder = Mp4Recorder(tmp_path / "call.mp4", fps=25, audio=True)
    recorder.write(np.zeros((32, 32, 3), np.uint8), 1000.0)
    chunk = np.concatenate([np.zeros(4800, np.int16), tone(2400)])  # silent 100 ms, tone 50 ms
    recorder.write_audio(chunk, 940.0)  # played from 940 ms: the tone from 1040 ms
    recorder.write_audio(np.zeros(4800, np.int16), 1090.0)
    recorder.close()
    assert recorder.audio_samples == len(chunk) - 60 * 48 + 4800
    _, start_s, samples = decoded_audio(tmp_path / "call.mp4")
    loud = np.flatnonzero(np.abs(samples) > 0.1)
    assert start_s == 0.0 and abs(loud[0] / 48 - 40) < 2 and abs(loud[-1] / 48 - 90) < 2


def test_a_recording_without_sound_or_without_frames_still_closes_into_a_file(
    tmp_path: Path,
) -> None:
    silent = Mp4Recorder(tmp_path / "frames.mp4", fps=25, audio=True)
    silent.write(np.zeros((32, 32, 3), np.uint8), 0.0)
    silent.close()
    with av.open(str(tmp_path / "frames.mp4")) as container:
        assert len(list(container.decode(video=0))) == 1
    sound = Mp4Recorder(tmp_path / "sound.mp4", fps=25, audio=True)
    sound.write_audio(tone(4800), 0.0)
    sound.close()
    rate, _, samples = decoded_audio(tmp_path / "sound.mp4")
    assert rate == 48000 and np.abs(samples).max() > 0.2
    with pytest.raises(ValueError, match="opened without audio"):
        Mp4Recorder(tmp_path / "video.mp4", fps=25).write_audio(tone(960), 0.0)


async def test_output_thread_records_sound_and_drops_it_beyond_its_backlog(
    tmp_path: Path,
) -> None:
    recorder = SlowRecorder(tmp_path / "call.mp4", delay_s=0.3, audio=True)
    output = OutputThread(recorder, None)
    output.put(np.zeros((32, 32, 3), np.uint8), 0.0)  # the encoder is busy with it for 0.3 s
    for i in range(AUDIO_BACKLOG + 10):
        output.put_audio(tone(960), 20.0 * i)
    await output.close()
    assert output.audio_dropped == 10
    assert recorder.audio_samples == AUDIO_BACKLOG * 960
