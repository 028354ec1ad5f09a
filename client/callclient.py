"""One participant of a call: capture → face crop → motion → WebRTC, and the other's cartoon back.

    client = CallClient(CallConfig(server="http://127.0.0.1:8080", room=..., token=...))
    result = await client.run()   # CallResult: frames, rates, latencies, prompt swaps

On joining, the client sends ``hello`` (preset, motion schema fingerprint, capabilities) and
compares the server's; a mismatch, or an ``error`` the server marks fatal, ends the call with a
CallError that says what to change. ``style`` messages say which style each prompt became.
Style pictures (``config.style_images`` at the start, :meth:`CallClient.send_style_images` or a
line ``@PATH`` on stdin mid-call) are sent like a new prompt: the server adapts a style to
their look in the background and answers ``style`` once frames render in it.

End-to-end latency of a shown frame is (arrival time) - (capture time at the sender), both on
the server's call clock: the client estimates its offset to that clock from ping/pong round
trips on the ``stats`` channel and stamps captures with it, so the figure holds across machines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from client.audio import CapturedAudioTrack, ReceivedAudio, audio_source
from client.capture import CaptureThread, open_source
from client.recorder import Mp4Recorder, OutputThread, Window
from codec import DEFAULT_TARGET_KBPS, MotionEncoder, motion_schema
from codec.keyframe import encode_keyframe, split_chunks
from codec.packet import TIME_MODULUS, unwrap
from models.face_crop import FaceTracker
from pipeline import protocol
from pipeline.iceservers import ice_configuration
from pipeline.meters import RateMeter, percentiles
from pipeline.opus import shorten_audio_jitter
from pipeline.protocol import frame_key

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0
CLOCK_PINGS = 5
MATCH_BUFFER = 64  # frames / metadata kept while waiting for their counterpart


class CallError(RuntimeError):
    """The call could not be set up (refused by the server, no connection) or broke off."""


@dataclass
class CallConfig:
    server: str
    room: str
    token: str
    input: str = "synthetic"
    prompt: str = ""
    prompt_schedule: list[tuple[float, str]] = field(default_factory=list)
    # re-encoded style pictures (models.style_images.read_sent_style_images), sent at the start
    style_images: list[bytes] = field(default_factory=list)
    preset: str = "lite-128"
    checkpoint: str | None = None
    fps: float = 25.0
    seconds: float | None = None  # None: until the other side leaves or Ctrl-C
    record: Path | None = None
    show: bool = False
    read_stdin: bool = False
    name: str = "client"
    motion_amplitude: float = 1.0
    seed: int = 0
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs, see pipeline.iceservers
    mute: bool = False  # send no audio track


@dataclass
class ShownFrame:
    arrival_ms: float  # server call clock
    latency_ms: float
    seq: int
    prompt_id: int
    concealed: bool = False  # the server extrapolated the motion: that packet did not arrive


@dataclass
class PromptSent:
    id: int
    text: str
    sent_ms: float  # server call clock


@dataclass
class CallResult:
    name: str
    duration_s: float
    sending_s: float  # first to last motion packet
    frames_sent: int
    frames_received: int
    shown: list[ShownFrame]
    prompts: list[PromptSent]
    style_errors: list[str]
    motion_bytes: int
    control_bytes: int  # JSON messages; the key frame's chunks are counted apart
    keyframe_bytes: int
    downlink_bytes: int
    uplink_bytes: int
    style_image_bytes: int = 0  # style pictures' chunks
    av_offsets_ms: list[float] = field(default_factory=list)  # client.audio.AudioPlayout

    def summary(self) -> dict[str, Any]:
        seconds = max(self.duration_s, 1e-6)
        p50, p95, p99 = percentiles([f.latency_ms for f in self.shown])
        showing_s = self.shown[-1].arrival_ms - self.shown[0].arrival_ms if self.shown else 0.0
        return {
            "frames_sent": self.frames_sent,
            "frames_shown": len(self.shown),
            "frames_concealed": sum(f.concealed for f in self.shown),
            "fps_sent": _rate(self.frames_sent, self.sending_s),
            "fps_shown": _rate(len(self.shown), showing_s / 1000),
            "uplink_motion_kbps": self.motion_bytes * 8 / 1000 / seconds,
            "uplink_control_kbps": self.control_bytes * 8 / 1000 / seconds,
            "keyframe_bytes": self.keyframe_bytes,
            "style_image_bytes": self.style_image_bytes,
            "uplink_total_kbps": self.uplink_bytes * 8 / 1000 / seconds,
            "downlink_kbps": self.downlink_bytes * 8 / 1000 / seconds,
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "latency_p99_ms": p99,
            # ms, positive: the sound came late; p95 of the offset's size
            "av_offset_p50_ms": percentiles(self.av_offsets_ms, (50,))[0],
            "av_offset_p95_abs_ms": percentiles([abs(o) for o in self.av_offsets_ms], (95,))[0],
            "av_offsets": len(self.av_offsets_ms),
        }


def _rate(events: int, seconds: float) -> float:
    """Events per second over the span from the first to the last event."""
    return (events - 1) / seconds if events > 1 and seconds > 0 else 0.0


class ServerClock:
    """The server's call clock seen from here: offset estimated from the fastest ping."""

    def __init__(self) -> None:
        self.offset_ms = 0.0
        self.best_rtt_ms = float("inf")
        self.synced = asyncio.Event()

    @staticmethod
    def local_ms() -> float:
        return time.monotonic() * 1000

    def now_ms(self) -> float:
        return self.local_ms() + self.offset_ms

    def on_pong(self, sent_local_ms: float, server_ms: float) -> None:
        now = self.local_ms()
        rtt = now - sent_local_ms
        if rtt < self.best_rtt_ms:
            self.best_rtt_ms = rtt
            self.offset_ms = server_ms + rtt / 2 - now
        self.synced.set()


class CallClient:
    def __init__(self, config: CallConfig) -> None:
        from models import MotionExtractor

        self.config = config
        self.extractor = MotionExtractor(preset=config.preset, checkpoint=config.checkpoint)
        # the server acknowledges each decoded frame: inter frames predict from those
        self.encoder = MotionEncoder(
            schema=motion_schema(), fps=config.fps, feedback=True, target_kbps=DEFAULT_TARGET_KBPS
        )
        self.tracker = FaceTracker(self.extractor.size)
        self.clock = ServerClock()
        source = open_source(config.input, config.fps, config.motion_amplitude, config.seed)
        self.capture = CaptureThread(source, config.fps, self.clock.now_ms)
        self.pc = RTCPeerConnection(ice_configuration(config.ice_servers))
        self.channels: dict[str, RTCDataChannel] = {}
        recorder = Mp4Recorder(config.record, config.fps, audio=True) if config.record else None
        window = Window(f"cartooncodec {config.name}") if config.show else None
        self.output = OutputThread(recorder, window) if recorder or window else None
        self.audio_out: CapturedAudioTrack | None = None  # --mute: none
        if not config.mute:
            self.audio_out = CapturedAudioTrack(
                audio_source(config.input), ServerClock.local_ms, lambda: self.clock.offset_ms
            )
        sink = None if self.output is None else self.output.put_audio
        self.audio_in = ReceivedAudio(self.clock.now_ms, sink)
        self.prompt_id = -1
        self.prompts: list[PromptSent] = []
        self.style_errors: list[str] = []
        self.styles: dict[int, str] = {}  # prompt id -> the style the server made active
        self.server_hello: dict[str, Any] | None = None
        self.failure: CallError | None = None  # why the call ended early, raised by call()
        self.shown: list[ShownFrame] = []
        self.shown_meter = RateMeter()
        self.frames_sent = 0
        self.frames_received = 0
        self.motion_bytes = 0
        self.control_bytes = 0
        self.keyframe_bytes = 0
        self.style_image_bytes = 0
        self.acks_refused = 0
        self.last_shown_image: np.ndarray | None = None
        self.peer_left = asyncio.Event()
        self._stop = asyncio.Event()
        self._meta: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._unmatched: OrderedDict[int, tuple[float, np.ndarray]] = OrderedDict()
        self._tasks: list[asyncio.Task[Any]] = []
        self._started = 0.0
        self._stopped = 0.0
        self._transport_bytes = (0, 0)
        self._first_sent = self._last_sent = 0.0

    # -- set-up --------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Offer, join the room, open the channels, sync the clock, send hello and key frame."""
        self.channels = {
            protocol.MOTION: self.pc.createDataChannel(
                protocol.MOTION, ordered=False, maxRetransmits=0
            ),
            protocol.CONTROL: self.pc.createDataChannel(protocol.CONTROL),
            protocol.STATS: self.pc.createDataChannel(protocol.STATS),
        }
        self.channels[protocol.MOTION].on("message", self._on_ack)
        self.channels[protocol.CONTROL].on("message", self._on_control)
        self.channels[protocol.STATS].on("message", self._on_stats)
        self.pc.addTransceiver("video", direction="recvonly")
        audio = self.pc.addTransceiver(
            self.audio_out or "audio",
            direction="recvonly" if self.audio_out is None else "sendrecv",
        )
        shorten_audio_jitter(audio)
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self._exchange(self.pc.localDescription)
        await self.pc.setRemoteDescription(answer)
        await asyncio.wait_for(self._channels_open(), CONNECT_TIMEOUT_S)
        await asyncio.wait_for(self._sync_clock(), CONNECT_TIMEOUT_S)
        if self.audio_out is not None:
            self.audio_out.connected.set()
        self._send_control(self._hello())

    def _hello(self) -> str:
        return protocol.encode_hello(self.config.preset, self.encoder.schema.fingerprint())

    async def _exchange(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        url = f"{self.config.server.rstrip('/')}/rooms/{self.config.room}/offer"
        body = {"token": self.config.token, "sdp": offer.sdp, "type": offer.type}
        async with httpx.AsyncClient(timeout=CONNECT_TIMEOUT_S) as http:
            try:
                response = await http.post(url, json=body)
            except httpx.HTTPError as exc:
                raise CallError(f"cannot reach the server at {self.config.server}: {exc}") from exc
        if response.status_code != 200:
            detail = response.json().get("detail", response.text) if response.content else ""
            raise CallError(f"server refused to join ({response.status_code}): {detail}")
        answer = response.json()
        return RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])

    async def _channels_open(self) -> None:
        while any(ch.readyState != "open" for ch in self.channels.values()):
            await asyncio.sleep(0.02)

    async def _sync_clock(self) -> None:
        for _ in range(CLOCK_PINGS):
            self._ping()
            await asyncio.sleep(0.02)
        await self.clock.synced.wait()

    def _ping(self) -> None:
        message = protocol.encode_message("ping", t=self.clock.local_ms())
        self.channels[protocol.STATS].send(message)

    def send_keyframe(self, face: np.ndarray) -> None:
        """face: the reference crop, HxWx3 uint8 RGB, sent in chunks on ``control``."""
        data = encode_keyframe(face)
        for chunk in split_chunks(data):
            self.channels[protocol.CONTROL].send(chunk)
            self.keyframe_bytes += len(chunk)
        logger.info("%s: key frame %d bytes", self.config.name, len(data))

    def send_prompt(self, text: str) -> None:
        self.prompt_id += 1
        self.prompts.append(PromptSent(self.prompt_id, text, self.clock.now_ms()))
        self._send_control(protocol.encode_message("prompt", id=self.prompt_id, text=text))
        logger.info("%s: prompt %d %r", self.config.name, self.prompt_id, text)

    def send_style_images(self, pictures: list[bytes]) -> None:
        """Ask for a style adapted to ``pictures`` (from
        ``models.style_images.encode_style_image``): announced on ``control`` under the next
        prompt id, then each picture in chunks."""
        from models.style_images import picture_style_name

        self.prompt_id += 1
        name = picture_style_name(pictures)
        self.prompts.append(PromptSent(self.prompt_id, name, self.clock.now_ms()))
        transfers = [zlib.crc32(data) for data in pictures]
        self._send_control(
            protocol.encode_message("style_image", id=self.prompt_id, transfers=transfers)
        )
        for data in pictures:
            for chunk in split_chunks(data):
                self.channels[protocol.CONTROL].send(chunk)
                self.style_image_bytes += len(chunk)
        logger.info(
            "%s: prompt %d: %d style pictures, %d bytes",
            self.config.name,
            self.prompt_id,
            len(pictures),
            sum(map(len, pictures)),
        )

    def _send_control(self, message: str) -> None:
        channel = self.channels[protocol.CONTROL]
        if channel.readyState == "open":
            channel.send(message)
            self.control_bytes += len(message)

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> CallResult:
        """Join, call for ``config.seconds`` (or until the other side leaves), hang up."""
        try:
            await self.connect()
            await self.call()
        finally:
            await self.close()
        return self.result()

    async def call(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = time.monotonic()
        image, _ = await self.capture.next()
        face = await loop.run_in_executor(None, self.tracker.crop, image)
        self.send_keyframe(face)
        self.send_prompt(self.config.prompt)
        if self.config.style_images:
            self.send_style_images(self.config.style_images)
        sending = asyncio.create_task(self._send_motion())
        peer_left = asyncio.create_task(self.peer_left.wait())
        stopped = asyncio.create_task(self._stop.wait())
        self._tasks += [
            sending,
            peer_left,
            stopped,
            asyncio.create_task(self._report_loop()),
            asyncio.create_task(self._prompt_schedule()),
        ]
        if self.config.read_stdin:
            self._read_stdin_prompts()
        if self.audio_out is not None:
            announce = self.audio_out.announce(self.channels[protocol.STATS].send)
            self._tasks.append(asyncio.create_task(announce))
        ends = [sending, peer_left, stopped]
        await asyncio.wait(ends, timeout=self.config.seconds, return_when=asyncio.FIRST_COMPLETED)
        self._stopped = time.monotonic()
        if self.failure is not None:
            raise self.failure
        failure = sending.exception() if sending.done() and not sending.cancelled() else None
        if failure is not None:
            raise CallError(f"sending motion failed: {failure}") from failure

    def stop(self) -> None:
        """End :meth:`call` now (the caller then closes)."""
        self._stop.set()

    def fail(self, reason: str) -> None:
        """End :meth:`call` now; it raises CallError(reason) (the first reason, if several)."""
        if self.failure is None:
            self.failure = CallError(reason)
        self._stop.set()

    async def _send_motion(self) -> None:
        """Encode and send each captured frame; the capture thread paces them at ``fps``, and
        drops the older of two when extraction falls behind."""
        loop = asyncio.get_running_loop()
        while True:
            image, captured_ms = await self.capture.next()
            capture_ms = max(0, round(captured_ms))
            features = await loop.run_in_executor(None, self._motion_of, image)
            packet = self.encoder.encode(features, capture_ms, max(self.prompt_id, 0))
            channel = self.channels[protocol.MOTION]
            if channel.readyState != "open":
                return
            channel.send(packet)
            self._last_sent = time.monotonic()
            if self.frames_sent == 0:
                self._first_sent = self._last_sent
            self.motion_bytes += len(packet)
            self.frames_sent += 1

    def _motion_of(self, image: np.ndarray) -> np.ndarray:
        """image: HxWx3 uint8 RGB -> the face's motion features (runs off the event loop)."""
        return self.extractor.extract(self.tracker.crop(image))

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._ping()
            recent = [f.latency_ms for f in self.shown[-50:]]
            p50 = percentiles(recent, (50,))[0]
            report = protocol.encode_message(
                "report", fps_shown=self.shown_meter.per_second(), latency_p50_ms=p50
            )
            self.channels[protocol.STATS].send(report)

    async def _prompt_schedule(self) -> None:
        for at_s, text in sorted(self.config.prompt_schedule):
            await asyncio.sleep(max(0.0, self._started + at_s - time.monotonic()))
            self.send_prompt(text)

    def _read_stdin_prompts(self) -> None:
        """Each line typed (or piped) on stdin becomes the new prompt; ``@PATH`` sends the
        style picture(s) at PATH (a file or folder) instead."""
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        if not (os.isatty(fd) or stat.S_ISFIFO(os.fstat(fd).st_mode)):
            return

        def on_line() -> None:
            line = sys.stdin.readline()
            if not line:
                loop.remove_reader(fd)
            elif line.strip().startswith("@"):
                path = line.strip()[1:].strip()
                self._tasks.append(asyncio.create_task(self.send_style_images_from([path])))
            elif line.strip():
                self.send_prompt(line.strip())

        loop.add_reader(fd, on_line)

    async def send_style_images_from(self, paths: list[str]) -> None:
        """Read and re-encode the style pictures at ``paths`` (files or folders) off the event
        loop, then send them; a picture that cannot be read is said in the log, and the call
        goes on."""
        from models.style_images import read_sent_style_images

        try:
            pictures = await asyncio.to_thread(read_sent_style_images, paths)
        except ValueError as exc:
            logger.warning("%s: style picture not sent: %s", self.config.name, exc)
            return
        self.send_style_images(pictures)

    # -- incoming ------------------------------------------------------------------------------

    def _on_ack(self, data: str | bytes) -> None:
        """The server decoded a frame: later frames may predict from it."""
        try:
            self.encoder.acknowledge(protocol.parse_ack(data))
        # not an acknowledgement, or one naming a frame not sent: the reference stays
        except ValueError as exc:
            self.acks_refused += 1
            logger.debug("%s: ignoring acknowledgement: %s", self.config.name, exc)

    def _on_control(self, data: str | bytes) -> None:
        try:
            message = protocol.parse_message(data)
        except protocol.ProtocolError as exc:
            logger.warning("%s: ignoring control message: %s", self.config.name, exc)
            return
        kind = message["type"]
        if kind == "intra":
            self.encoder.request_intra()
        elif kind == "hello":
            self._on_hello(message)
        elif kind == "style":
            self._on_style(message["id"], message["name"])
        elif kind == "error":
            self._on_error(message["message"], message.get("fatal") is True)
        elif kind == "bye":
            self.peer_left.set()

    def _on_hello(self, hello: dict[str, Any]) -> None:
        mismatch = protocol.hello_mismatch(hello, protocol.parse_message(self._hello()))
        if mismatch is not None:
            self.fail(f"the server cannot take this call: {mismatch[1]}")
            return
        self.server_hello = hello
        logger.info("%s: server agrees (preset %s)", self.config.name, hello["preset"])

    def _on_style(self, prompt_id: int, style: str) -> None:
        """The server renders prompt ``prompt_id`` as ``style``: the built-in style the prompt
        named or described, else the normalised prompt itself."""
        self.styles[prompt_id] = style
        prompt = next((p.text for p in self.prompts if p.id == prompt_id), "")
        logger.info(
            "%s: prompt %d %r is active as style %r", self.config.name, prompt_id, prompt, style
        )

    def _on_error(self, text: str, fatal: bool) -> None:
        """The server refused something; ``fatal``: the call cannot go on (said once, by
        call()'s CallError, rather than logged too)."""
        if fatal:
            self.fail(f"the server ended the call: {text}")
            return
        logger.warning("%s: server says: %s", self.config.name, text)
        self.style_errors.append(text)

    def _on_stats(self, data: str | bytes) -> None:
        try:
            message = protocol.parse_message(data)
        except protocol.ProtocolError as exc:
            logger.warning("%s: ignoring stats message: %s", self.config.name, exc)
            return
        if message["type"] == "pong":
            self.clock.on_pong(message["t"], message["server_ms"])
        elif message["type"] == "frame":
            self._on_frame_meta(message)
        elif message["type"] == "audio":
            self.audio_in.playout.anchor(message["pts"], message["capture_ms"])

    def _on_frame_meta(self, meta: dict[str, Any]) -> None:
        key = frame_key(meta["pts"])
        if key in self._unmatched:
            arrival_ms, image = self._unmatched.pop(key)
            self._show(image, arrival_ms, meta)
        else:
            _put_bounded(self._meta, key, meta)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.create_task(self._receive(track)))
        elif track.kind == "audio":
            self._tasks.append(asyncio.create_task(self.audio_in.run(track)))

    async def _receive(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrival_ms = self.clock.now_ms()
            if not isinstance(frame, VideoFrame) or frame.pts is None:
                continue
            self.frames_received += 1
            image = frame.to_ndarray(format="rgb24")
            key = frame_key(frame.pts)
            meta = self._meta.pop(key, None)
            if meta is None:
                _put_bounded(self._unmatched, key, (arrival_ms, image))
            else:
                self._show(image, arrival_ms, meta)

    def _show(self, image: np.ndarray, arrival_ms: float, meta: dict[str, Any]) -> None:
        capture_ms = unwrap(meta["capture_ms"] % TIME_MODULUS, round(arrival_ms), TIME_MODULUS)
        self.shown.append(
            ShownFrame(
                arrival_ms,
                arrival_ms - capture_ms,
                meta["seq"],
                meta["prompt_id"],
                bool(meta["concealed"]),
            )
        )
        self.shown_meter.add()
        self.audio_in.playout.video_shown(capture_ms, arrival_ms)
        self.last_shown_image = image
        if self.output is not None:
            self.output.put(image, arrival_ms)

    # -- teardown ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Say bye, stop every task, close the peer connection and the outputs."""
        control = self.channels.get(protocol.CONTROL)
        if control is not None and control.readyState == "open":
            control.send(protocol.encode_message("bye"))
            await asyncio.sleep(0.05)  # let the bye leave before the transport closes
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._transport_bytes = await self._transport_totals()
        await self.pc.close()
        await self.capture.close()
        await asyncio.to_thread(self.tracker.close)
        if self.output is not None:
            await self.output.close()

    async def _transport_totals(self) -> tuple[int, int]:
        """(bytes sent, bytes received) on the DTLS transport: every data channel, the video,
        RTCP, and their SCTP/DTLS framing."""
        report = await self.pc.getStats()
        sent = received = 0
        for entry in report.values():
            if entry.type == "transport":
                sent += entry.bytesSent
                received += entry.bytesReceived
        return sent, received

    def result(self) -> CallResult:
        sent, received = self._transport_bytes
        return CallResult(
            name=self.config.name,
            duration_s=max(0.0, self._stopped - self._started),
            sending_s=self._last_sent - self._first_sent,
            frames_sent=self.frames_sent,
            frames_received=self.frames_received,
            shown=self.shown,
            prompts=self.prompts,
            style_errors=self.style_errors,
            motion_bytes=self.motion_bytes,
            control_bytes=self.control_bytes,
            keyframe_bytes=self.keyframe_bytes,
            style_image_bytes=self.style_image_bytes,
            av_offsets_ms=self.audio_in.playout.offsets_ms,
            downlink_bytes=received,
            uplink_bytes=sent,
        )


def _put_bounded(table: OrderedDict[int, Any], key: int, value: Any) -> None:
    table[key] = value
    while len(table) > MATCH_BUFFER:
        table.popitem(last=False)
