from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, CodecContext

from client import audio, uplink
from client.audio import (
    AUDIO_MARGIN_MS,
    BLOCK_MS,
    FRAME_MS,
    FRAME_SAMPLES,
    MAX_PULL_MS,
    MICROPHONE_RING_MS,
    SAMPLE_RATE,
    SAMPLES_PER_MS,
    AudioPlayout,
    CapturedAudioTrack,
    Microphone,
    Played,
    ReceivedAudio,
    audio_source,
    decode_sound,
    file_sound,
    mono_samples,
    open_speaker,
    silence,
    sound_devices,
    tone_bursts,
)
from client.callclient import CallClient
from client.capture import VideoFile, open_source, synthetic_portrait_path
from pipeline import protocol
from pipeline.opus import OPUS_LOOKAHEAD_SAMPLES
from tests.fakesound import FakeSoundDevice
from tests.mediaclips import write_clip_with_sound
from tests.tinycall import seat_config, tiny_server


def test_tone_bursts_sound_in_the_first_part_of_each_period_of_the_call_clock() -> None:
    source = tone_bursts(period_ms=1000, burst_ms=200, hz=500, level=0.5)
    samples = source(900.0, 48 * 400).astype(float)  # 900 .. 1300 ms
    loud = np.flatnonzero(np.abs(samples) > 1000) / SAMPLES_PER_MS + 900
    assert loud[0] == pytest.approx(1000, abs=1) and loud[-1] == pytest.approx(1200, abs=1)
    assert np.abs(samples).max() == pytest.approx(0.5 * 32767, rel=0.01)
    assert not silence(0.0, 960).any()
    with pytest.raises(ValueError, match="burst_ms must be in"):
        tone_bursts(period_ms=100, burst_ms=100)


async def test_the_captured_track_paces_its_frames_and_says_when_pts_0_was() -> None:
    local_ms = lambda: time.monotonic() * 1000  # noqa: E731
    source = tone_bursts(period_ms=100, burst_ms=50, level=0.3)
    # the call clock is 5 s ahead of the local one
    track = CapturedAudioTrack(source, local_ms, call_offset_ms=lambda: 5000.0)
    first = asyncio.create_task(track.recv())
    await asyncio.sleep(0.1)
    assert not first.done()  # nothing goes out before the client's channels are open
    track.connected.set()
    begin = time.monotonic()
    packets = [await first] + [await track.recv() for _ in range(5)]
    elapsed = time.monotonic() - begin
    assert 4.8 * FRAME_MS / 1000 <= elapsed < 10 * FRAME_MS / 1000  # five frames after the first
    # Opus packets, stamped as libopus does: the frame's pts less the lookahead
    assert [p.pts for p in packets] == [
        i * FRAME_SAMPLES - OPUS_LOOKAHEAD_SAMPLES for i in range(6)
    ]
    assert track.origin_ms is not None
    sent: list[str] = []
    offset_ms = 5000.0
    track.call_offset_ms = lambda: offset_ms
    announcing = asyncio.create_task(track.announce(sent.append, period_s=0.05))
    await asyncio.sleep(0.01)
    offset_ms = 5012.0  # a faster ping refined the clock: the next message says so
    await asyncio.sleep(0.06)
    announcing.cancel()
    capture_ms = [protocol.parse_message(m)["capture_ms"] for m in sent[:2]]
    assert all(protocol.parse_message(m)["pts"] == 0 for m in sent)
    assert capture_ms == pytest.approx([track.origin_ms + 5000, track.origin_ms + 5012], abs=0.1)
    decoder = CodecContext.create("libopus", "r")
    decoded = np.concatenate(
        [mono_samples(f) for p in packets for f in decoder.decode(p)]  # type: ignore[arg-type]
    )
    # the sound of those capture times on the call clock: 50 ms of tone, 50 ms of silence
    start_ms = track.origin_ms + 5000
    loud = np.abs(decoded[OPUS_LOOKAHEAD_SAMPLES:].astype(float)) > 1000
    in_burst = source(start_ms, len(loud)) != 0
    assert (loud == in_burst).mean() > 0.9 and in_burst.any()
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def ramp(first: int, count: int) -> np.ndarray:
    """Samples whose value says which capture sample they are (mod 2**15)."""
    return ((first + np.arange(count)) % 32768).astype(np.int16)


def run_call(
    audio_latency_ms: float, video_latencies_ms: list[float], seconds: float = 3.0
) -> AudioPlayout:
    """A simulated viewer: audio frames arrive ``audio_latency_ms`` after capture, a 10 fps
    face is shown with the given latencies in turn, the speaker pulls every 20 ms."""
    playout = AudioPlayout()
    playout.anchor(0, 10_000.0)  # pts 0 was captured at 10 s on the call clock
    events: list[tuple[float, str, int]] = []
    for k in range(round(seconds * 1000 / FRAME_MS)):
        events.append((10_000 + FRAME_MS * (k + 1) + audio_latency_ms, "audio", k))
    for k in range(round(seconds * 10)):
        latency = video_latencies_ms[k % len(video_latencies_ms)]
        events.append((10_000 + 100 * k + latency, "video", k))
    pull_from = 10_000.0
    for t in range(10_000, 10_000 + round(seconds * 1000) + 500, 20):
        events.append((float(t) + 0.5, "pull", 0))
    for at, kind, k in sorted(events):
        if kind == "audio":
            pts = k * FRAME_SAMPLES
            decoded_pts = pts + OPUS_LOOKAHEAD_SAMPLES  # as aiortc's decoder stamps the frame
            playout.push(decoded_pts, ramp(10_000 * SAMPLES_PER_MS + pts, FRAME_SAMPLES), at)
        elif kind == "video":
            playout.video_shown(10_000 + 100 * k, at)
        else:
            count = round((at - pull_from) * SAMPLES_PER_MS)
            played = playout.pull(pull_from, count)
            due = round((pull_from - playout.delay_ms) * SAMPLES_PER_MS)
            start, present = playout._played[-1].start, playout._played[-1].present
            # what played is the audio captured ``delay_ms`` earlier (within the slack)
            assert abs(start - due) <= playout.slack
            assert np.array_equal(played[present], ramp(start, count)[present])
            assert not played[~present].any()
            pull_from = at
    return playout


def test_sound_plays_when_the_face_of_the_same_instant_is_shown() -> None:
    playout = run_call(audio_latency_ms=30, video_latencies_ms=[110, 120, 100, 115])
    offsets = np.array(playout.offsets_ms)
    assert len(offsets) >= 25  # nearly every shown frame of 3 s at 10 fps
    assert np.abs(offsets).max() <= 20  # the slack, and the 20 ms between pulls
    assert abs(np.median(offsets)) <= 10
    assert playout.samples_late == 0


def test_sound_that_arrives_after_the_face_is_measured_late() -> None:
    # the audio takes 300 ms, the face 100 ms: the sound cannot be on time, and the meter says
    # by how much rather than pretending
    playout = run_call(audio_latency_ms=300, video_latencies_ms=[100])
    offsets = np.array(playout.offsets_ms)
    assert len(offsets) >= 20
    # delay: 300 ms and a frame from capture to the arrival of a frame's first sample, and the
    # margin
    expected = 300 + FRAME_MS + AUDIO_MARGIN_MS - 100
    assert np.median(offsets) == pytest.approx(expected, abs=15)


def test_the_ring_stays_its_size_and_samples_without_an_anchor_are_dropped() -> None:
    playout = AudioPlayout(capacity_ms=200)
    playout.push(0, ramp(0, 960), 0.0)
    assert playout.frames_unanchored == 1
    playout.anchor(0, 0.0)
    for k in range(500):  # 10 s into a 0.2 s ring
        playout.push(k * 960 + OPUS_LOOKAHEAD_SAMPLES, ramp(k * 960, 960), 20.0 * k)
    assert playout._ring.samples.shape == (200 * SAMPLES_PER_MS,)
    # only the newest 200 ms are still there
    played = playout.pull(10_000 - 200 + playout.delay_ms, 200 * SAMPLES_PER_MS)
    assert np.array_equal(played, ramp(480_000 - 9600, 9600))
    assert not playout.pull(10_000 - 400 + playout.delay_ms, 960).any()
    with pytest.raises(ValueError, match=f"capacity_ms must be >= {2 * FRAME_MS}"):
        AudioPlayout(capacity_ms=10)


class QueueTrack:
    """A stand-in remote track: frames from a list, then the end of the track."""

    kind = "audio"

    def __init__(self, frames: list[AudioFrame]) -> None:
        self.frames = frames

    async def recv(self) -> AudioFrame:
        await asyncio.sleep(0.02)
        if not self.frames:
            raise MediaStreamError
        return self.frames.pop(0)


async def test_received_audio_plays_continuously_to_its_sink_until_the_track_ends() -> None:
    clock_ms = lambda: time.monotonic() * 1000  # noqa: E731
    chunks: list[tuple[np.ndarray, float]] = []
    received = ReceivedAudio(clock_ms, [lambda samples, at_ms: chunks.append((samples, at_ms))])
    received.playout.anchor(0, clock_ms())
    frames = []
    for k in range(25):
        frame = AudioFrame.from_ndarray(np.full((1, 960), 5000, np.int16), layout="mono")
        frame.sample_rate, frame.pts = 48000, k * 960
        frames.append(frame)
    await received.run(QueueTrack(frames))  # type: ignore[arg-type]
    assert received.frames == 25
    starts = [at for _, at in chunks]
    counts = [len(samples) for samples, _ in chunks]
    # back to back: each chunk starts where the one before ended
    assert np.allclose(np.diff(starts), np.array(counts[:-1]) / SAMPLES_PER_MS)
    assert sum(counts) == pytest.approx(25 * 20 * SAMPLES_PER_MS, rel=0.5)
    assert sum(int((samples == 5000).sum()) for samples, _ in chunks) > 10 * 960


async def test_received_audio_waits_where_the_call_clock_steps_back() -> None:
    """A faster ping moves the call clock back mid-way by more than a pull's span
    (``FRAME_MS``): the instants already played are not played again (a recording would push
    all the sound after them that much late)."""
    frames = []
    for k in range(25):
        frame = AudioFrame.from_ndarray(np.full((1, 960), 5000, np.int16), layout="mono")
        frame.sample_rate, frame.pts = 48000, k * 960
        frames.append(frame)
    track = QueueTrack(frames)
    stepped = lambda: 2.5 * FRAME_MS if len(track.frames) < 12 else 0.0  # noqa: E731
    clock_ms = lambda: time.monotonic() * 1000 - stepped()  # noqa: E731
    chunks: list[tuple[np.ndarray, float]] = []
    received = ReceivedAudio(clock_ms, [lambda samples, at_ms: chunks.append((samples, at_ms))])
    received.playout.anchor(0, clock_ms())
    await received.run(track)  # type: ignore[arg-type]
    assert stepped() > 0
    ends = [at + len(samples) / SAMPLES_PER_MS for samples, at in chunks]
    starts = [at for _, at in chunks]
    assert np.allclose(starts[1:], ends[:-1], rtol=0, atol=0.01)  # back to back, never overlapping
    assert len(chunks) >= 5 and all(len(samples) for samples, _ in chunks)


def burst_onsets_ms(path: Path) -> tuple[np.ndarray, float]:
    """(where the tone bursts begin in the file's audio, ms; its loudest sample, 0..1)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    assert frames and frames[0].sample_rate == 48000
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    start_ms = float(frames[0].time) * 1000
    loud = np.flatnonzero(np.abs(samples) > 0.05)
    # a burst begins where the sound follows at least 20 ms of silence
    begins = loud[np.concatenate([[True], np.diff(loud) > 20 * SAMPLES_PER_MS])]
    return start_ms + begins / SAMPLES_PER_MS, float(np.abs(samples).max())


async def test_sound_reaches_the_other_recording_where_the_meter_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice sends the synthetic sound, bursts that begin at every whole second of the call
    clock; bob is muted. bob's MP4 holds alice's sound, and each burst begins where the meter
    says: when the face captured at that second was shown, plus the offset bob measured for
    that face. A sound stamped wrongly on its way (sender, server, anchors, recording) would
    begin elsewhere. alice hears nothing, and her call goes on."""
    monkeypatch.setattr(uplink, "audio_source", lambda *args: tone_bursts(250, 60))
    async with tiny_server(tmp_path) as (url, http, checkpoint):
        room = (await http.post("/rooms")).json()

        def participant(seat: int, mute: bool) -> CallClient:
            config = seat_config(
                url,
                room,
                seat,
                checkpoint,
                prompt="sketch",
                fps=15.0,
                record=tmp_path / f"seat{seat}.mp4",
                mute=mute,
                seconds=7.0,
            )
            return CallClient(config)

        alice, bob = participant(0, mute=False), participant(1, mute=True)
        pulls: list[Played] = []  # everything bob's playout played, in order
        pull = bob.viewer.audio.playout.pull

        def logged_pull(now_ms: float, count: int) -> np.ndarray:
            samples = pull(now_ms, count)
            pulls.append(bob.viewer.audio.playout._played[-1])
            if len(pulls) == 60:  # bob's loop stalls once, past MAX_PULL_MS: the sound skips
                time.sleep((MAX_PULL_MS + 60) / 1000)
            return samples

        monkeypatch.setattr(bob.viewer.audio.playout, "pull", logged_pull)
        await asyncio.gather(alice.connect(), bob.connect())
        await asyncio.gather(alice.call(), bob.call())
        await asyncio.gather(alice.close(), bob.close())
    seen = bob.result()
    assert len(seen.shown) >= 15 and len(alice.result().shown) >= 15

    onsets, loudest = burst_onsets_ms(tmp_path / "seat1.mp4")
    # tone_bursts' level 0.3, through Opus at 24 kbps (twice) and AAC: up to 0.56 was seen at a
    # burst's abrupt start
    assert 0.15 < loudest < 0.7
    assert len(onsets) >= 10  # four a second while the sound flows (fewer when it skips)
    with av.open(str(tmp_path / "seat1.mp4")) as container:
        first_frame_ms = float(next(container.decode(video=0)).time) * 1000
    # the file's 0 on the call clock: the first frame displayed (its metadata may never come)
    assert bob.viewer.first_displayed_ms is not None
    origin_ms = bob.viewer.first_displayed_ms - first_frame_ms
    misses = []
    for played in pulls:  # each burst's first sample: when the playout played it, if it did
        first = -(-played.start // (250 * SAMPLES_PER_MS)) * 250 * SAMPLES_PER_MS
        if first < played.start + played.count and played.present[first - played.start]:
            expected = played.at_ms + (first - played.start) / SAMPLES_PER_MS - origin_ms
            misses.append(float(np.min(np.abs(onsets - expected))))
    # the bursts begin in the file where the playout put the samples stamped with their
    # capture instants: a sound stamped wrongly anywhere on its way would begin elsewhere
    # (before the recorder filled gaps with silence and the sound waited for a call clock that
    # stepped back, every burst after a stall or a step sat 34-61 ms off in the clean-clone suite)
    # (where the playout skipped ahead, its delay changing or the loop stalling, the silence
    # before a burst may be too short for it to be found: a few bursts are missed)
    assert len(misses) >= 5
    assert np.mean(np.asarray(misses) <= 5) >= 0.75, misses
    assert seen.summary()["av_offsets"] >= 10

    # bob sent no sound: alice's call went on, and her recording has frames and no sound
    assert alice.viewer.audio.frames == 0 and alice.result().av_offsets_ms == []
    with av.open(str(tmp_path / "seat0.mp4")) as container:
        assert len(list(container.decode(video=0))) >= 15
        assert all(stream.frames == 0 for stream in container.streams.audio)


@pytest.fixture(autouse=True)
def _fresh_sound_devices() -> Iterator[None]:
    """Each test looks for ``sounddevice`` (and warns) anew."""
    sound_devices.cache_clear()
    yield
    sound_devices.cache_clear()


def onsets_ms(samples: np.ndarray) -> np.ndarray:
    """Where the sound begins after at least 50 ms of silence (ms from the first sample)."""
    loud = np.flatnonzero(np.abs(samples.astype(float)) > 3000)
    begins = loud[np.concatenate([[True], np.diff(loud) > 50 * SAMPLES_PER_MS])]
    return begins / SAMPLES_PER_MS


def test_a_video_files_sound_plays_with_its_pictures_and_loops_with_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clip.mp4"
    write_clip_with_sound(path, tone_s=(0.5, 0.7))  # 44.1 kHz stereo: resampled
    now_ms = 10_000.0  # the call clock
    frames = open_source(str(path), fps=15, clock=lambda: now_ms)
    sound = audio_source(str(path), frames, lambda: now_ms)
    assert frames.read().mean() == pytest.approx(0, abs=2)  # the file starts here
    # the picture shown at 10.52 s is the file's at 0.52 s (picture 5), whose sound is the tone
    now_ms = 10_520.0
    assert frames.read().mean() == pytest.approx(50, abs=2)
    at_picture = sound(now_ms, FRAME_SAMPLES).astype(float)
    assert np.abs(at_picture).max() > 0.4 * 32767
    assert not np.abs(sound(10_300.0, FRAME_SAMPLES)).max() > 300  # 0.3 s into the file: quiet
    # two rounds of the file from its start: the tone begins at 0.5 s of each, to a few ms
    played = sound(10_000.0, 4000 * SAMPLES_PER_MS)
    assert onsets_ms(played) == pytest.approx([500, 2500], abs=3)
    now_ms = 12_560.0  # a round later, the same picture and sound again
    assert frames.read().mean() == pytest.approx(50, abs=2)
    assert np.array_equal(sound(now_ms, FRAME_SAMPLES), sound(10_560.0, FRAME_SAMPLES))
    frames.close()


def test_a_files_sound_is_bounded_and_a_file_without_sound_sends_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "clip.mp4"
    write_clip_with_sound(path, tone_s=(0.2, 1.8), rate=48_000)
    monkeypatch.setattr(audio, "MAX_FILE_SOUND_S", 1)
    kept = decode_sound(path)
    assert kept.dtype == np.int16 and len(kept) == SAMPLE_RATE  # at most 1 s of the 2 s
    frames = open_source(str(path), fps=10, clock=lambda: 0.0)
    assert isinstance(frames, VideoFile)
    sound = file_sound(frames)
    frames.read()  # the file starts at 0 on the call clock
    assert np.abs(sound(500.0, 960)).max() > 10_000  # the tone, within the first second
    assert not sound(1200.0, 960).any()  # beyond what is kept: silence
    frames.close()

    silent = tmp_path / "silent.mp4"
    write_clip_with_sound(silent, tone_s=None)
    frames = open_source(str(silent), fps=10)
    assert audio_source(str(silent), frames, time.monotonic) is silence
    frames.close()
    image = open_source(str(synthetic_portrait_path()), fps=10)
    assert audio_source(str(synthetic_portrait_path()), image, time.monotonic) is silence


def test_a_file_whose_sound_cannot_be_decoded_is_refused_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    write_clip_with_sound(path, tone_s=(0.5, 0.7), garbage=True)
    frames = open_source(str(path), fps=10)
    with pytest.raises(
        ValueError, match=rf"cannot read the sound of {re.escape(str(path))}: .*Invalid data"
    ):
        audio_source(str(path), frames, time.monotonic)
    frames.close()


def test_the_microphone_gives_what_it_captured_at_each_capture_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeSoundDevice()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    now_ms = 0.0
    mic = audio_source("0", VideoSourceStub(), lambda: now_ms)
    assert isinstance(mic, Microphone)
    (stream,) = fake.streams
    assert stream.active and stream.settings["samplerate"] == SAMPLE_RATE
    assert stream.settings["dtype"] == "int16" and stream.settings["channels"] == 1
    block = BLOCK_MS * SAMPLES_PER_MS

    def hand_over(at_ms: float, first: int) -> None:
        """PortAudio's thread: a block of ramp(first) arrives at ``at_ms`` on the call clock."""
        nonlocal now_ms
        now_ms = at_ms
        stream.callback(ramp(first, block)[:, None], block, None, None)

    # blocks from 5 s on, handed over 10 ms apart, each up to 2 ms late (the slack joins them)
    for k in range(30):
        hand_over(5010.0 + 10 * k + (k % 3), 5000 * SAMPLES_PER_MS + k * block)
    assert np.array_equal(mic(5000.0, 300 * SAMPLES_PER_MS), ramp(5000 * SAMPLES_PER_MS, 14400))
    # before the first block, and once taken: silence
    assert not mic(4990.0, 480).any() and not mic(5000.0, 480).any()
    # after a gap (the device stalled), the next block is stamped anew: where it arrived
    hand_over(5600.0, 7)
    assert np.array_equal(mic(5590.0, block), ramp(7, block))
    # a frame is asked for once its samples are there: after its end and the next block
    track = CapturedAudioTrack(mic, time.monotonic, lambda: 0.0)
    assert track.lag_ms == FRAME_MS + 2 * BLOCK_MS
    # the ring does not grow: of 5 s handed over, the newest 2 s are kept
    for k in range(500):
        hand_over(6010.0 + 10 * k, k * block)
    assert mic._ring.samples.shape == (MICROPHONE_RING_MS * SAMPLES_PER_MS,)
    assert not mic(6000.0, 960).any()
    newest = 500 * block - MICROPHONE_RING_MS * SAMPLES_PER_MS
    assert np.array_equal(mic(11_000.0 - MICROPHONE_RING_MS, 960), ramp(newest, 960))
    mic.close()
    mic.close()
    assert stream.closed and not stream.active


class VideoSourceStub:
    """A webcam's pictures (the microphone does not look at them)."""

    def read(self) -> np.ndarray:
        return np.zeros((8, 8, 3), np.uint8)

    def close(self) -> None:
        """Nothing to release."""


def test_the_speaker_plays_in_order_silence_when_dry_and_drops_the_oldest_when_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeSoundDevice()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    speaker = open_speaker()
    assert speaker is not None
    (stream,) = fake.streams
    assert stream.active and stream.settings["samplerate"] == SAMPLE_RATE

    def play(frames: int) -> np.ndarray:
        out = np.full((frames, 1), 99, np.int16)
        stream.callback(out, frames, None, None)
        return out[:, 0]

    assert not play(480).any() and speaker.underrun == 480  # nothing yet: silence
    speaker.put(ramp(0, 960), 0.0)
    speaker.put(ramp(960, 960), 20.0)
    assert np.array_equal(play(1500), ramp(0, 1500))
    out = play(600)  # 420 left, then dry
    assert np.array_equal(out[:420], ramp(1500, 420)) and not out[420:].any()
    assert speaker.underrun == 480 + 180
    # full: 600 ms put into 500 ms, the oldest 100 ms go; also from a chunk larger than all
    for k in range(30):
        speaker.put(ramp(k * 960, 960), 20.0 * k)
    assert speaker.dropped == 30 * 960 - speaker.capacity
    assert np.array_equal(play(960), ramp(30 * 960 - speaker.capacity, 960))
    speaker.put(ramp(0, speaker.capacity + 100), 0.0)
    assert np.array_equal(play(960), ramp(100, 960))
    speaker.close()
    assert stream.closed


@pytest.mark.parametrize(
    "missing",
    [ImportError("No module named 'sounddevice'"), OSError("PortAudio library not found")],
)
def test_without_sounddevice_or_portaudio_one_warning_and_the_call_goes_on(
    missing: Exception, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_module(name: str) -> ModuleType:
        raise missing

    monkeypatch.setattr(audio.importlib, "import_module", no_module)
    with caplog.at_level(logging.WARNING, logger="client.audio"):
        assert audio_source("0", VideoSourceStub(), time.monotonic) is silence
        assert open_speaker() is None
        assert audio_source("1", VideoSourceStub(), time.monotonic) is silence
    (warning,) = caplog.records
    assert str(missing) in warning.getMessage()
    assert "pip install 'cartooncodec[sound]'" in warning.getMessage()
    assert "apt install libportaudio2" in warning.getMessage()


def test_without_a_device_a_warning_and_the_call_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice(no_device=True))
    with caplog.at_level(logging.WARNING, logger="client.audio"):
        assert audio_source("0", VideoSourceStub(), time.monotonic) is silence
        assert open_speaker() is None
    assert [r.getMessage() for r in caplog.records] == [
        "no microphone (Error querying device -1): sending silence",
        "no speaker (Error querying device -1): the other's sound is not played",
    ]
