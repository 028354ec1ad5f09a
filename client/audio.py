"""The call's sound at the client: what it sends, and the other's, held back to match the face.

Sending: ``CapturedAudioTrack`` is an aiortc audio track of 20 ms frames (48 kHz mono s16)
paced in real time; a ``SampleSource`` gives the samples for each capture time on the call
clock (``audio_source`` picks it: ``tone_bursts`` for ``synthetic``, the ``Microphone`` for a
webcam, a video file's own sound in step with its pictures, ``silence``). The track remembers
when its pts 0 was captured on the call clock, which the client tells the server
(``announce``: an ``audio`` message, again every second as the clock's offset is refined), so
the server knows each frame's capture time.

Receiving: the server forwards the other participant's audio with ``audio`` anchors (a pts of
that track and its capture time on the call clock). ``AudioPlayout`` keeps the received samples
in a fixed ring indexed by capture time and plays each sample ``delay_ms`` after its capture,
where ``delay_ms`` follows the shown face's latency (capture → shown), so a sound is heard when
the face of the same instant is seen. It measures this per shown frame: the A/V offset is the
time the audio of that frame's capture instant played minus the time the frame was shown
(positive: the sound came late). The samples due go to the recording and, with ``--show``, the
``Speaker``.

Microphone and speaker go through the optional ``sounddevice`` package (PortAudio,
``pip install 'cartooncodec[sound]'``); where it or a device is missing, one warning says so and
the call goes on with silence and no playing.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import importlib
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, Packet

from client.capture import FrameSource, VideoFile
from pipeline import protocol
from pipeline.opus import (
    OPUS_FRAME_MS,
    OPUS_LOOKAHEAD_SAMPLES,
    OpusPackets,
    mono_samples,
    received_frames,
)

SAMPLE_RATE = 48_000
SAMPLES_PER_MS = SAMPLE_RATE // 1000
FRAME_MS = OPUS_FRAME_MS
FRAME_SAMPLES = FRAME_MS * SAMPLES_PER_MS
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
AUDIO_MARGIN_MS = 10.0  # sound waits this much longer than its own latency asks

# SampleSource(start_ms, count): ``count`` int16 mono samples at 48 kHz whose first was
# captured at ``start_ms`` on the call clock
SampleSource = Callable[[float, int], np.ndarray]

logger = logging.getLogger(__name__)


def silence(start_ms: float, count: int) -> np.ndarray:
    """``count`` samples of silence (int16), whatever the time."""
    return np.zeros(count, np.int16)


def tone_bursts(
    period_ms: float = 1000.0, burst_ms: float = 200.0, hz: float = 440.0, level: float = 0.3
) -> SampleSource:
    """A ``hz`` tone for the first ``burst_ms`` of every ``period_ms`` of the call clock, else
    silence: bursts begin at known capture instants, so their lateness can be measured."""
    if not 0 < burst_ms < period_ms:
        raise ValueError(f"burst_ms must be in (0, period_ms), got {burst_ms} of {period_ms}")

    def samples(start_ms: float, count: int) -> np.ndarray:
        t_ms = start_ms + np.arange(count) / SAMPLES_PER_MS
        on = np.mod(t_ms, period_ms) < burst_ms
        wave = np.sin(2 * math.pi * hz * t_ms / 1000) * level * 32767
        return np.where(on, wave, 0).astype(np.int16)

    return samples


MAX_FILE_SOUND_S = 600  # of a file's sound, at most this much is kept (55 MiB); later, silence


def decode_sound(path: Path) -> np.ndarray:
    """The first audio stream of the video file ``path``, int16 mono at 48 kHz, from the time of
    its first picture (at most ``MAX_FILE_SOUND_S``; empty where it has no sound). Raises
    ValueError naming the file where its sound cannot be decoded."""
    limit = MAX_FILE_SOUND_S * SAMPLE_RATE
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return np.zeros(0, np.int16)
            video = container.streams.video[0] if container.streams.video else None
            video_start_s = (
                float(video.start_time * video.time_base)
                if video is not None and video.start_time is not None and video.time_base
                else 0.0
            )
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            kept = skip = 0  # samples from the first picture on; sound before it, left out
            for frame in container.decode(container.streams.audio[0]):
                if not chunks and frame.time is not None:
                    kept = round((frame.time - video_start_s) * SAMPLE_RATE)
                    chunks.append(np.zeros(max(0, kept), np.int16))
                    skip = max(0, -kept)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    kept += out.samples
                if kept >= limit:
                    break
            else:
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.FFmpegError as exc:
        raise ValueError(f"cannot read the sound of {path}: {exc}") from exc
    return np.concatenate(chunks)[skip : skip + limit] if chunks else np.zeros(0, np.int16)


def file_sound(video: VideoFile) -> SampleSource:
    """The sound of ``video``'s file (``decode_sound``, decoded here, once), looped with its
    pictures: the samples of a capture time (call clock) are those at the file position
    ``video.playhead`` gives for it, the position its picture is shown at then. Past the sound's
    end (a shorter track, or beyond ``MAX_FILE_SOUND_S``) it is silence, as for a file
    without sound."""
    sound = decode_sound(video.path)
    if not len(sound):
        return silence
    playhead = video.playhead
    period = max(1, round(playhead.period_ms * SAMPLES_PER_MS))

    def samples(start_ms: float, count: int) -> np.ndarray:
        first = round(playhead.position_ms(start_ms) * SAMPLES_PER_MS)
        index = (first + np.arange(count)) % period
        return np.where(index < len(sound), sound[np.minimum(index, len(sound) - 1)], 0).astype(
            np.int16
        )

    return samples


SOUND_HINT = "pip install 'cartooncodec[sound]' and PortAudio (e.g. apt install libportaudio2)"


@functools.cache
def sound_devices() -> ModuleType | None:
    """The ``sounddevice`` module (PortAudio), or None where it or PortAudio is missing: then
    one warning says what to install, and the call goes on without microphone and speaker."""
    try:
        return importlib.import_module("sounddevice")
    except (ImportError, OSError) as exc:
        logger.warning(
            "no sound devices (%s): the microphone sends silence and nothing plays the other's "
            "sound; for them: %s",
            exc,
            SOUND_HINT,
        )
        return None


class SampleRing:
    """Samples by capture sample (call-clock ms × 48) in a fixed ring of ``capacity``: a sample
    takes the slot of the one ``capacity`` earlier, and a slot holding another index reads as
    absent. Not thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.samples = np.zeros(capacity, np.int16)
        self._stamp = np.full(capacity, -1, np.int64)  # which capture sample each slot holds

    def put(self, index: np.ndarray, samples: np.ndarray) -> None:
        """samples (int16) of capture samples ``index`` (int64, same length)."""
        slots = index % self.capacity
        self.samples[slots] = samples
        self._stamp[slots] = index

    def take(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the samples of capture samples ``index``, silence where absent; which were present),
        and forget them."""
        slots = index % self.capacity
        present = self._stamp[slots] == index
        out = np.where(present, self.samples[slots], 0).astype(np.int16)
        self._stamp[slots[present]] = -1
        return out, present


BLOCK_MS = 10  # what the microphone hands over at a time
MICROPHONE_RING_MS = 2000


class Microphone:
    """The default input device (``sounddevice.InputStream``), a ``SampleSource``.

    PortAudio's thread hands over each block (``BLOCK_MS``, int16 mono at 48 kHz), stamped
    ``clock()`` (call clock, ms) at its arrival less its length (the device's own input latency
    is not taken off), into a ``SampleRing`` of ``MICROPHONE_RING_MS``: memory never grows, and
    nothing there waits on the event loop. Blocks follow on without a gap while their stamps
    stay within ``slack_ms`` of that. Called with a capture time, it gives the samples captured
    then, silence where none were (before the first block, overwritten, or already taken); those
    of an instant are there ``lag_ms`` after it.
    """

    lag_ms = FRAME_MS + 2 * BLOCK_MS

    def __init__(
        self, sounddevice: ModuleType, clock: Callable[[], float], slack_ms: float = 5.0
    ) -> None:
        self.clock = clock
        self.slack = round(slack_ms * SAMPLES_PER_MS)
        self._ring = SampleRing(MICROPHONE_RING_MS * SAMPLES_PER_MS)
        self._next: int | None = None  # capture sample the next block continues from
        self._lock = threading.Lock()
        self.stream = sounddevice.InputStream(
            samplerate=SAMPLE_RATE,
            channels=1,
            dtype="int16",
            blocksize=BLOCK_MS * SAMPLES_PER_MS,
            callback=self._captured,
        )
        self.stream.start()

    def _captured(self, block: np.ndarray, frames: int, time_info: object, status: object) -> None:
        """PortAudio's callback: ``block`` (frames x 1 int16) was just captured."""
        first = round(self.clock() * SAMPLES_PER_MS) - frames
        with self._lock:
            if self._next is not None and abs(first - self._next) <= self.slack:
                first = self._next
            self._next = first + frames
            self._ring.put(first + np.arange(frames), block[:frames, 0])

    def __call__(self, start_ms: float, count: int) -> np.ndarray:
        """The ``count`` samples (int16 mono) captured from ``start_ms`` (call clock) on."""
        index = round(start_ms * SAMPLES_PER_MS) + np.arange(count)
        with self._lock:
            return self._ring.take(index)[0]

    def close(self) -> None:
        """Stop the input stream (again: nothing)."""
        if not self.stream.closed:
            self.stream.stop()
            self.stream.close()


def open_microphone(clock: Callable[[], float]) -> SampleSource:
    """The ``Microphone``, or ``silence`` where there is none (said in the log)."""
    sounddevice = sound_devices()
    if sounddevice is None:
        return silence
    try:
        return Microphone(sounddevice, clock)
    except sounddevice.PortAudioError as exc:
        logger.warning("no microphone (%s): sending silence", exc)
        return silence


def audio_source(spec: str, frames: FrameSource, clock: Callable[[], float]) -> SampleSource:
    """What a participant with input ``spec`` sends, ``frames`` being that input's pictures
    (``client.capture.open_source``): ``tone_bursts`` for ``synthetic``, the microphone for a
    webcam (stamped on ``clock``, the call clock in ms; silence where there is none), a video
    file's sound in step with its pictures (``file_sound``), silence for an image."""
    if spec == "synthetic":
        return tone_bursts()
    if spec.isdigit():
        return open_microphone(clock)
    if isinstance(frames, VideoFile):
        return file_sound(frames)
    return silence


class CapturedAudioTrack(MediaStreamTrack):
    """Outbound audio: 20 ms frames (mono s16, 48 kHz, pts in samples from 0) paced by the
    local clock ``local_ms``, handed to aiortc as Opus packets (``pipeline.opus.OpusPackets``);
    frame k was captured at ``origin_ms + 20 k`` on that clock, which is ``call_offset_ms()``
    behind the call clock (the client's ``ServerClock``). A frame is made once its capture
    instant has come, or, from a ``Microphone``, ``lag_ms`` after it (its samples are there
    then)."""

    kind = "audio"

    def __init__(
        self,
        source: SampleSource,
        local_ms: Callable[[], float],
        call_offset_ms: Callable[[], float],
    ) -> None:
        super().__init__()
        self.source = source
        self.local_ms = local_ms
        self.call_offset_ms = call_offset_ms
        self.lag_ms = source.lag_ms if isinstance(source, Microphone) else 0.0
        self.origin_ms: float | None = None  # local time of pts 0, set by the first recv
        self._started = asyncio.Event()
        # set by the client once its channels are open: no frame goes out before, so the first
        # packet, from which the receiver counts pts, is not lost to a handshake under way
        self.connected = asyncio.Event()
        self._frames = 0
        self._opus = OpusPackets()

    async def recv(self) -> Packet:
        """The next frame once it is due, made and encoded on a worker thread."""
        packet = None
        while packet is None:
            if self.readyState != "live":
                raise MediaStreamError
            if self.origin_ms is None:
                await self.connected.wait()
                self.origin_ms = self.local_ms()
                self._started.set()
            capture_ms = self.origin_ms + self._frames * FRAME_MS
            await asyncio.sleep(max(0.0, (capture_ms + self.lag_ms - self.local_ms()) / 1000))
            pts = self._frames * FRAME_SAMPLES
            self._frames += 1
            call_ms = capture_ms + self.call_offset_ms()
            packet = await self._opus.next(functools.partial(self._frame, call_ms, pts))
        return packet

    def _frame(self, capture_ms: float, pts: int) -> AudioFrame:
        """The frame captured at ``capture_ms`` on the call clock."""
        samples = self.source(capture_ms, FRAME_SAMPLES)
        frame = AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, pts, TIME_BASE
        return frame

    async def announce(self, send: Callable[[str], None], period_s: float = 1.0) -> None:
        """Once the first frame is out, and then every ``period_s``: ``send`` the ``audio``
        message saying when pts 0 was captured on the call clock as it now stands (the clock's
        offset is refined by later pings, and the faces' capture times follow it)."""
        await self._started.wait()
        assert self.origin_ms is not None
        while True:
            capture_ms = round(self.origin_ms + self.call_offset_ms(), 1)
            send(protocol.encode_message("audio", pts=0, capture_ms=capture_ms))
            await asyncio.sleep(period_s)


@dataclass
class Played:
    """``count`` samples from capture sample ``start`` (call-clock ms × 48) began playing at
    ``at_ms`` (call clock); ``present``: which of them had arrived (the rest played silent)."""

    start: int
    count: int
    at_ms: float
    present: np.ndarray


class AudioPlayout:
    """The other's audio, played ``delay_ms`` after capture to match the shown face.

    Samples wait in a ring of ``capacity_ms`` indexed by capture sample (call-clock ms × 48):
    nothing the sender does grows it, and samples older than what plays next are dropped.
    ``delay_ms`` is the larger of the newest shown frame's latency (``video_shown``) and the
    audio's own, so sound never waits for a sample that cannot have arrived; before any face is
    shown it is ``initial_delay_ms``. ``pull`` plays on from where the last pull ended while that
    stays within ``slack_ms`` of where the delay says (so loop jitter does not cut the sound),
    and jumps otherwise.
    """

    def __init__(
        self,
        capacity_ms: float = 2000.0,
        initial_delay_ms: float = 150.0,
        slack_ms: float = 30.0,
        history: int = 100,
    ) -> None:
        if capacity_ms < 2 * FRAME_MS:
            raise ValueError(f"capacity_ms must be >= {2 * FRAME_MS}, got {capacity_ms}")
        self._ring = SampleRing(round(capacity_ms * SAMPLES_PER_MS))
        self.initial_delay_ms = initial_delay_ms
        self.delay_ms = initial_delay_ms
        self.slack = round(slack_ms * SAMPLES_PER_MS)
        self._video_delay_ms: float | None = None
        self._audio_delay_ms = 0.0
        self._anchor: tuple[int, float] | None = None  # (pts, capture ms)
        self._next: int | None = None  # capture sample the next pull continues from
        self._played: deque[Played] = deque(maxlen=history)
        self._waiting: deque[tuple[float, float]] = deque(maxlen=history)  # (capture, shown) ms
        self.measured: list[tuple[float, float]] = []  # (capture ms of a shown face, offset ms)
        self.frames_unanchored = 0
        self.samples_late = 0

    @property
    def offsets_ms(self) -> list[float]:
        """The A/V offset of each shown face whose sound has played (ms, positive: late)."""
        return [offset for _, offset in self.measured]

    def anchor(self, pts: int, capture_ms: float) -> None:
        """The sender's sample ``pts`` (1/48000 s) was captured at ``capture_ms``."""
        self._anchor = (pts, capture_ms)

    def push(self, pts: int, samples: np.ndarray, arrival_ms: float) -> None:
        """samples: int16 mono of the decoded frame at ``pts`` (its sound was sent at pts
        ``pts - OPUS_LOOKAHEAD_SAMPLES``); dropped while no anchor has come."""
        if self._anchor is None:
            self.frames_unanchored += 1
            return
        anchor_pts, anchor_ms = self._anchor
        first = round(anchor_ms * SAMPLES_PER_MS) + pts - anchor_pts - OPUS_LOOKAHEAD_SAMPLES
        self._audio_delay_ms = arrival_ms - first / SAMPLES_PER_MS + AUDIO_MARGIN_MS
        self._update_delay()
        index = first + np.arange(len(samples))
        if self._next is not None:
            keep = index >= self._next
            self.samples_late += int((~keep).sum())
            index, samples = index[keep], samples[keep]
        self._ring.put(index, samples)

    def video_shown(self, capture_ms: float, shown_ms: float) -> None:
        """A frame captured at ``capture_ms`` was shown at ``shown_ms`` (both call clock)."""
        self._video_delay_ms = shown_ms - capture_ms
        self._update_delay()
        if not self._measure(capture_ms, shown_ms):
            self._waiting.append((capture_ms, shown_ms))

    def _update_delay(self) -> None:
        video = self.initial_delay_ms if self._video_delay_ms is None else self._video_delay_ms
        self.delay_ms = max(video, self._audio_delay_ms)

    def pull(self, now_ms: float, count: int) -> np.ndarray:
        """The ``count`` samples (int16 mono) that start playing at ``now_ms``: silence where
        none arrived."""
        due = round((now_ms - self.delay_ms) * SAMPLES_PER_MS)
        start = due if self._next is None or abs(due - self._next) > self.slack else self._next
        out, present = self._ring.take(start + np.arange(count))
        self._next = start + count
        self._played.append(Played(start, count, now_ms, present))
        self._waiting = deque(
            (w for w in self._waiting if not self._measure(*w)), maxlen=self._waiting.maxlen
        )
        return out

    def _measure(self, capture_ms: float, shown_ms: float) -> bool:
        """Record the offset of the frame captured at ``capture_ms`` once the sample of that
        instant has played (True: done; also when it played silent or was skipped)."""
        sample = round(capture_ms * SAMPLES_PER_MS)
        for played in reversed(self._played):
            if played.start <= sample < played.start + played.count:
                if played.present[sample - played.start]:
                    at_ms = played.at_ms + (sample - played.start) / SAMPLES_PER_MS
                    self.measured.append((capture_ms, at_ms - shown_ms))
                return True
        return self._next is not None and sample < self._next


AudioSink = Callable[[np.ndarray, float], None]  # (int16 mono samples, call-clock ms they start)
MAX_PULL_MS = 200  # after a longer stall of the loop, the sound skips ahead


class ReceivedAudio:
    """The other participant's audio at this viewer: each frame of their track goes into an
    ``AudioPlayout``, and from the first one on, every 20 ms the samples due are handed to each
    of ``sinks`` (a recording, a speaker), as many as the call clock advanced: back to back, with
    a gap after a stall of the loop past ``MAX_PULL_MS`` and a pause where the clock stepped
    back."""

    def __init__(self, clock: Callable[[], float], sinks: Sequence[AudioSink]) -> None:
        self.clock = clock
        self.sinks = sinks
        self.playout = AudioPlayout()
        self.frames = 0
        self.samples_played = 0

    async def run(self, track: MediaStreamTrack) -> None:
        """Receive ``track`` until it ends (then the playing stops too)."""
        playing: asyncio.Task[None] | None = None
        try:
            async for pts, frame in received_frames(track):
                self.frames += 1
                self.playout.push(pts, mono_samples(frame), self.clock())
                if playing is None:
                    playing = asyncio.create_task(self._play())
        finally:
            if playing is not None:
                playing.cancel()
                await asyncio.gather(playing, return_exceptions=True)

    async def _play(self) -> None:
        started_ms = self.clock()
        while True:
            await asyncio.sleep(FRAME_MS / 1000)
            due = round((self.clock() - started_ms) * SAMPLES_PER_MS)
            if due <= self.samples_played:  # the call clock stepped back (a better ping):
                continue  # the sound waits for it, rather than play the same instants twice
            self.samples_played = max(self.samples_played, due - MAX_PULL_MS * SAMPLES_PER_MS)
            count = due - self.samples_played
            at_ms = started_ms + self.samples_played / SAMPLES_PER_MS
            samples = self.playout.pull(at_ms, count)
            self.samples_played = due
            for sink in self.sinks:
                sink(samples, at_ms)


SPEAKER_BUFFER_MS = 500


class Speaker:
    """The default output device (``sounddevice.OutputStream``), an ``AudioSink``.

    ``put`` (on the event loop) appends the samples to a FIFO of ``capacity_ms`` that
    PortAudio's thread plays from, in order, whatever their time (the device's own latency is
    not compensated): where it runs dry the device plays silence (counted in ``underrun``,
    samples), and where it is full the oldest samples are dropped (``dropped``)."""

    def __init__(self, sounddevice: ModuleType, capacity_ms: float = SPEAKER_BUFFER_MS) -> None:
        self.capacity = round(capacity_ms * SAMPLES_PER_MS)
        self._buffer = np.zeros(self.capacity, np.int16)
        self._read = self._written = 0  # samples taken out and put in, ever
        self._lock = threading.Lock()
        self.underrun = self.dropped = 0
        self.stream = sounddevice.OutputStream(
            samplerate=SAMPLE_RATE, channels=1, dtype="int16", callback=self._play
        )
        self.stream.start()

    def put(self, samples: np.ndarray, start_ms: float) -> None:
        """samples: int16 mono, to play after those put before (``start_ms`` is not used)."""
        kept = samples[-self.capacity :]
        with self._lock:
            self._written += len(samples) - len(kept)  # put and, below, dropped at once
            self._buffer[(self._written + np.arange(len(kept))) % self.capacity] = kept
            self._written += len(kept)
            excess = self._written - self._read - self.capacity
            if excess > 0:
                self._read += excess
                self.dropped += excess

    def _play(self, out: np.ndarray, frames: int, time_info: object, status: object) -> None:
        """PortAudio's callback: fill ``out`` (frames x 1 int16)."""
        with self._lock:
            count = min(frames, self._written - self._read)
            out[:count, 0] = self._buffer[(self._read + np.arange(count)) % self.capacity]
            self._read += count
            self.underrun += frames - count
        out[count:] = 0

    def close(self) -> None:
        """Stop the output stream."""
        self.stream.stop()
        self.stream.close()


def open_speaker() -> Speaker | None:
    """The ``Speaker``, or None where there is none (said in the log)."""
    sounddevice = sound_devices()
    if sounddevice is None:
        return None
    try:
        return Speaker(sounddevice)
    except sounddevice.PortAudioError as exc:
        logger.warning("no speaker (%s): the other's sound is not played", exc)
        return None
