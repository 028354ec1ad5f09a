"""One participant of a room: their RTCPeerConnection, data channels and render worker.

The client opens the three data channels (see pipeline.protocol) and a receive-only video
transceiver; the server answers with a RenderedVideoTrack on that transceiver that carries the
*other* participant's stylized face. Joining costs only the peer connection: the renderer is
built once the connection is up (or a data channel opens, which needs it up).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from codec import BitstreamError, MotionDecoder, motion_schema
from codec.concealment import Concealer
from codec.keyframe import KeyframeAssembler
from models.style_images import picture_style_name
from pipeline import protocol
from pipeline.iceservers import ice_configuration
from pipeline.meters import RateMeter
from pipeline.opus import shorten_audio_jitter
from pipeline.protocol import ProtocolError, redact_paths
from server.audiorelay import SAMPLES_PER_MS, ForwardedAudioTrack, IncomingAudio
from server.keyframes import KeyframeDecodes, KeyframesBusy
from server.renderworker import FrameMeta, RenderedVideoTrack, RenderWorker
from server.settings import ServerSettings

logger = logging.getLogger(__name__)

INTRA_REQUEST_INTERVAL_S = 0.25
# A frame this many of the sender's frame intervals overdue is concealed (codec.concealment)
CONCEAL_AFTER_INTERVALS = 1.5
# What aiortc raises on a session description it cannot use: its parser lets through whatever
# the line it trips on gives, and StopIteration surfaces from a coroutine as RuntimeError.
NEGOTIATION_ERRORS = (
    AttributeError,
    AssertionError,
    LookupError,
    RuntimeError,
    StopIteration,
    TypeError,
    ValueError,
)


@dataclass
class StylePictures:
    """A ``style_image`` announcement and the pictures of it that have arrived so far."""

    prompt_id: int
    transfers: list[int]
    received: dict[int, bytes] = field(default_factory=dict)

    def complete(self) -> bool:
        return len(self.received) == len(self.transfers)

    def pictures(self) -> list[bytes]:
        return [self.received[transfer] for transfer in self.transfers]


class Participant:
    def __init__(
        self,
        room_id: str,
        seat: int,
        settings: ServerSettings,
        renderer_factory: Callable[[], Any],
        keyframes: KeyframeDecodes,
    ) -> None:
        self.room_id = room_id
        self.seat = seat
        self.settings = settings
        self.pc = RTCPeerConnection(ice_configuration(settings.ice_servers))
        self.outbound = RenderedVideoTrack(on_frame_sent=self._send_frame_meta)
        self.audio_in = IncomingAudio()  # room.pair() points its sink at the viewer's audio_out
        self.audio_out = ForwardedAudioTrack(on_anchor=self._send_audio_anchor)
        self.worker = RenderWorker(renderer_factory, name=f"render-{room_id}-{seat}")
        self.worker.on_style_active = self._on_style_active
        self.worker.on_style_failed = self._on_style_failed
        self.worker.on_build_failed = self._on_build_failed
        self.keyframes = keyframes
        self.decoder = MotionDecoder(schema=motion_schema())
        self.accepted = False  # a hello matching the server's came: its motion is rendered
        self.concealer = Concealer(motion_schema())
        self.frames_concealed = 0
        self._conceal_timer: asyncio.TimerHandle | None = None
        self._connect_timer: asyncio.TimerHandle | None = None
        self.channels: dict[str, RTCDataChannel] = {}
        self.on_closed: Callable[[Participant], None] | None = None
        self.motion_in = RateMeter()
        self.control_in = RateMeter()
        self.malformed: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.client_report: dict[str, Any] = {}
        self.closed = asyncio.Event()
        self._keyframes = KeyframeAssembler(max_bytes=protocol.MAX_KEYFRAME_BYTES)
        self._decoding_keyframe = False
        self._style_pictures: StylePictures | None = None  # announced, not all arrived yet
        self._reading_style_pictures = False
        self._last_intra_request = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- negotiation ---------------------------------------------------------------------------

    async def accept(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answer the client's offer; returns once ICE gathering is complete (no trickle)."""
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("track", self._on_track)
        try:
            await self.pc.setRemoteDescription(offer)
            self.pc.addTrack(self.outbound)
            for transceiver in self.pc.getTransceivers():
                shorten_audio_jitter(transceiver)
            if any(t.kind == "audio" for t in self.pc.getTransceivers()):
                self.pc.addTrack(self.audio_out)  # on the client's audio transceiver
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        # aiortc trips over offers it cannot use in many ways (an m-line without a=mid gives
        # AttributeError); each means the offer is unusable, which is the client's error
        except NEGOTIATION_ERRORS as exc:
            raise ValueError(f"cannot answer this offer ({type(exc).__name__}: {exc})") from exc
        self._connect_timer = asyncio.get_running_loop().call_later(
            self.settings.connect_timeout_s, self._on_connect_timeout
        )
        return self.pc.localDescription

    def _on_connect_timeout(self) -> None:
        """A client that was answered but never connected frees its seat (a dead-end join);
        the render worker starts once the connection is up, so it tells whether it ever was."""
        if not self.worker.started:
            logger.info(
                "room %s seat %d: not connected within %g s, closing",
                self.room_id,
                self.seat,
                self.settings.connect_timeout_s,
            )
            self._spawn(self.close())

    def _on_connection_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.worker.start()
        elif self.pc.connectionState in ("failed", "closed"):
            self._spawn(self.close())

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self.worker.start()  # a channel opens over the connection: it is up
        handlers: dict[str, Callable[[str | bytes], None]] = {
            protocol.MOTION: self._on_motion,
            protocol.CONTROL: self._on_control,
            protocol.STATS: self._on_stats,
        }
        handler = handlers.get(channel.label)
        if handler is None:
            logger.warning(
                "room %s seat %d: ignoring channel %r", self.room_id, self.seat, channel.label
            )
            return
        self.channels[channel.label] = channel
        channel.on("message", handler)
        if channel.label == protocol.STATS:  # open: the viewer can receive the sound now
            self.audio_out.connected.set()
        if channel.label == protocol.CONTROL:
            channel.on("close", lambda: self._spawn(self.close()))

    # -- incoming ------------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self.audio_in.run(track))

    def _on_motion(self, packet: str | bytes) -> None:
        if not isinstance(packet, bytes):
            self.malformed[protocol.MOTION] += 1
            return
        if not self.accepted:  # no hello yet, or one that was refused (and told why)
            self.refused[protocol.MOTION] += 1
            return
        self.motion_in.add(len(packet))
        try:
            frame = self.decoder.decode(packet)
        except BitstreamError as exc:
            self.malformed[protocol.MOTION] += 1
            logger.debug("dropping malformed motion packet: %s", exc)
            frame = None
        if frame is not None:
            self.worker.submit(frame)
            self.send(protocol.MOTION, protocol.encode_ack(frame.seq))
            self.concealer.decoded(frame)
            self._arm_concealment(CONCEAL_AFTER_INTERVALS)
        if self.decoder.needs_intra:
            self._request_intra()

    def _arm_concealment(self, intervals: float) -> None:
        """Conceal the next frame unless one decodes within ``intervals`` frame intervals."""
        if self._conceal_timer is not None:
            self._conceal_timer.cancel()
            self._conceal_timer = None
        delay_s = intervals * self.concealer.interval_ms / 1000
        if delay_s > 0 and not self._closing:
            self._conceal_timer = asyncio.get_running_loop().call_later(delay_s, self._conceal)

    def _conceal(self) -> None:
        self._conceal_timer = None
        frame = self.concealer.conceal()
        if frame is None:  # the longest run concealed: the face holds still
            return
        self.frames_concealed += 1
        self.worker.submit(frame)
        self._arm_concealment(1.0)

    def _request_intra(self) -> None:
        now = time.monotonic()
        if now - self._last_intra_request >= INTRA_REQUEST_INTERVAL_S:
            self._last_intra_request = now
            self.send(protocol.CONTROL, protocol.encode_message("intra"))

    def _on_control(self, data: str | bytes) -> None:
        self.control_in.add(len(data))
        if isinstance(data, bytes):
            self._on_keyframe_chunk(data)
            return
        try:
            message = protocol.parse_message(data)
        except ProtocolError as exc:
            if exc.kind == "hello":  # another version's hello: say so rather than go quiet
                reason = f"hello refused: {exc}: use the same cartooncodec version on both"
                self.refuse("hello", reason, fatal=True)
            elif exc.kind == "style_image":
                self.refuse("style_image", f"style picture refused: {exc}")
            else:
                self._count_malformed(protocol.CONTROL, exc)
            return
        kind = message["type"]
        if kind == "hello":
            self._on_hello(message)
        elif kind == "prompt":
            self._on_prompt(message["id"], message["text"])
        elif kind == "style_image":
            self._on_style_image(message["id"], message["transfers"])
        elif kind == "bye":
            self._spawn(self.close())
        else:
            self._count_malformed(protocol.CONTROL, ProtocolError(f"unexpected {kind!r}"))

    def _on_hello(self, message: dict[str, Any]) -> None:
        """Answer with this server's hello; motion is rendered from a client whose hello matches
        it, and a client whose hello does not is refused (a fatal error)."""
        hello = protocol.encode_hello(
            self.settings.preset, self.decoder.schema.fingerprint(), seat=self.seat
        )
        mismatch = protocol.hello_mismatch(protocol.parse_message(hello), message)
        self.accepted = mismatch is None
        if mismatch is not None:
            self.refuse(*mismatch, fatal=True)
        self.send(protocol.CONTROL, hello)

    def _on_prompt(self, prompt_id: int, text: str) -> None:
        try:
            protocol.check_prompt(text)
            self.worker.set_prompt(prompt_id, text)
        except ValueError as exc:
            self.refuse("prompt", f"prompt {prompt_id} refused: {exc}")

    def _on_style_image(self, prompt_id: int, transfers: list[int]) -> None:
        """Pictures announced: their chunks follow. A newer announcement replaces an older
        one whose pictures have not all arrived."""
        self._style_pictures = StylePictures(prompt_id, transfers)

    def _on_keyframe_chunk(self, chunk: bytes) -> None:
        try:
            data = self._keyframes.add(chunk)
        except BitstreamError as exc:
            self.refuse("keyframe", f"key frame refused: {exc}")
            return
        if data is None:
            return
        pictures = self._style_pictures
        if pictures is not None and zlib.crc32(data) in pictures.transfers:
            pictures.received[zlib.crc32(data)] = data
            if pictures.complete():
                self._style_pictures = None
                self._on_style_pictures(pictures)
            return
        if self._decoding_keyframe:
            self.refuse("keyframe_busy", "key frame refused: your last one is still decoding")
            return
        self._decoding_keyframe = True
        self._spawn(self._set_reference(data))

    async def _set_reference(self, data: bytes) -> None:
        try:
            image = await self.keyframes.decode(data)
        except BitstreamError as exc:
            self.refuse("keyframe", f"key frame refused: {exc}")
            return
        except KeyframesBusy as exc:
            self.refuse("keyframe_busy", f"key frame refused: {exc}")
            return
        finally:
            self._decoding_keyframe = False
        try:
            await self.worker.set_reference(image)
        # the renderer refuses pictures it cannot use (too small for its networks)
        except (RuntimeError, ValueError) as exc:
            self.refuse("keyframe", f"key frame refused by the renderer: {exc}")
            return
        logger.info("room %s seat %d: key frame %s", self.room_id, self.seat, image.shape)

    def _on_style_pictures(self, pictures: StylePictures) -> None:
        if self._reading_style_pictures:
            self.refuse(
                "style_image_busy",
                f"style picture {pictures.prompt_id} refused: your last ones are still being read",
            )
            return
        self._reading_style_pictures = True
        self._spawn(self._set_style_pictures(pictures))

    async def _set_style_pictures(self, pictures: StylePictures) -> None:
        """Decode the pictures (bounded, off the event loop), then adapt to them in the
        background; every refusal reaches this participant only."""
        prompt_id = pictures.prompt_id
        try:
            images = await self.keyframes.decode_style_images(pictures.pictures())
        except (ValueError, KeyframesBusy) as exc:
            self.refuse("style_image", f"style picture {prompt_id} refused: {exc}")
            return
        finally:
            self._reading_style_pictures = False
        name = picture_style_name(pictures.pictures())
        logger.info(
            "room %s seat %d: %d style pictures %s as prompt %d",
            self.room_id,
            self.seat,
            len(images),
            [image.shape[:2] for image in images],
            prompt_id,
        )
        self.worker.set_style_images(prompt_id, images, name)

    def _on_stats(self, data: str | bytes) -> None:
        try:
            message = protocol.parse_message(data)
        except ProtocolError as exc:
            self._count_malformed(protocol.STATS, exc)
            return
        if message["type"] == "ping":
            self.send(
                protocol.STATS,
                protocol.encode_message("pong", t=message["t"], server_ms=server_clock_ms()),
            )
        elif message["type"] == "report":
            self.client_report = {k: v for k, v in message.items() if k != "type"}
        elif message["type"] == "audio":
            self.audio_in.started(message["capture_ms"] - message["pts"] / SAMPLES_PER_MS)
        else:
            self._count_malformed(protocol.STATS, ProtocolError(f"unexpected {message['type']!r}"))

    def _count_malformed(self, channel: str, exc: Exception) -> None:
        self.malformed[channel] += 1
        logger.debug(
            "room %s seat %d: dropped %s message: %s", self.room_id, self.seat, channel, exc
        )

    # -- outgoing ------------------------------------------------------------------------------

    def send(self, label: str, message: str | bytes) -> None:
        channel = self.channels.get(label)
        if channel is not None and channel.readyState == "open":
            channel.send(message)

    def refuse(self, what: str, reason: str, fatal: bool = False) -> None:
        """Count the refusal, log it, and tell the client why (without the server's paths);
        ``fatal``: the call cannot go on, and the client should end it."""
        self.refused[what] += 1
        logger.info("room %s seat %d: %s", self.room_id, self.seat, reason)
        error = protocol.encode_message("error", message=redact_paths(reason), fatal=fatal)
        self.send(protocol.CONTROL, error)

    def _send_frame_meta(self, meta: FrameMeta, pts: int) -> None:
        self.send(
            protocol.STATS,
            protocol.encode_message(
                "frame",
                pts=pts,
                seq=meta.seq,
                capture_ms=meta.capture_ms,
                prompt_id=meta.prompt_id,
                render_ms=round(meta.render_ms, 2),
                concealed=int(meta.concealed),
            ),
        )

    def _send_audio_anchor(self, pts: int, capture_ms: int) -> None:
        self.send(protocol.STATS, protocol.encode_message("audio", pts=pts, capture_ms=capture_ms))

    def _on_style_active(self, prompt_id: int, style: str) -> None:
        self.send(protocol.CONTROL, protocol.encode_message("style", id=prompt_id, name=style))

    def _on_style_failed(self, prompt_id: int, reason: str) -> None:
        self.refuse("prompt", f"prompt {prompt_id} could not be applied: {reason}")

    def _on_build_failed(self) -> None:
        """The server's fault, logged by the worker: say so, and end this call."""
        self.refuse(
            "renderer", "the server could not start rendering your face: call again later", True
        )
        self._spawn(self.close())

    # -- life cycle ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stats(self) -> dict[str, Any]:
        return {
            "seat": self.seat,
            "connection": self.pc.connectionState,
            "fps_in": round(self.motion_in.per_second(), 2),
            "uplink_motion_kbps": round(self.motion_in.kbps(), 3),
            "uplink_control_kbps": round(self.control_in.kbps(), 3),
            "motion_packets": self.motion_in.total_events,
            "frames_sent_to_viewer": self.outbound.frames_sent,
            "frames_concealed": self.frames_concealed,
            "frames_superseded": self.outbound.frames_superseded,
            "decoder": {**vars(self.decoder.stats), "dropped": dict(self.decoder.stats.dropped)},
            "malformed": dict(self.malformed),
            "refused": dict(self.refused),
            "render": self.worker.stats(),
            "client_report": self.client_report,
            "audio": {
                "frames_in": self.audio_in.frames,
                "frames_unanchored": self.audio_in.unanchored,
                "frames_to_viewer": self.audio_out.frames_sent,
                "frames_dropped": self.audio_out.frames_dropped,
            },
        }

    async def close(self) -> None:
        """Free the peer connection, the render worker and every task of this participant."""
        if self._closing:
            return
        self._closing = True
        for timer in (self._conceal_timer, self._connect_timer):
            if timer is not None:
                timer.cancel()
        logger.info("room %s seat %d closing: %s", self.room_id, self.seat, self.stats())
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        try:
            await self.worker.close()
            self.outbound.stop()
            self.audio_out.stop()
            await self.pc.close()
        # a peer connection whose negotiation failed half-way cannot always close cleanly
        except NEGOTIATION_ERRORS as exc:
            logger.warning("room %s seat %d: unclean close: %r", self.room_id, self.seat, exc)
        finally:
            self.closed.set()
            if self.on_closed is not None:
                self.on_closed(self)


_CLOCK_ORIGIN = time.monotonic()


def server_clock_ms() -> int:
    """Milliseconds on the server's call clock, which clients align their capture times to."""
    return int((time.monotonic() - _CLOCK_ORIGIN) * 1000)
