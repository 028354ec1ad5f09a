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
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from codec import BitstreamError
from codec.keyframe import split_chunks
from models.config import get_preset
from models.style_images import picture_style_name
from pipeline import protocol
from pipeline.concealtimer import ConcealmentTimer
from pipeline.iceservers import ice_configuration
from pipeline.meters import RateMeter, Throttle
from pipeline.opus import shorten_audio_jitter
from pipeline.protocol import ProtocolError, redact_paths
from pipeline.receiver import Receiver
from pipeline.renderworker import FrameMeta, RenderWorker
from pipeline.sctp import lean_sctp_requested, use_lean_sctp
from pipeline.transfers import ControlTransfers, StylePictures

if TYPE_CHECKING:
    from codec import DecodedFrame
from server.audiorelay import SAMPLES_PER_MS, ForwardedAudioTrack, IncomingAudio
from server.keyframes import KeyframeDecodes, KeyframesBusy
from server.settings import ServerSettings
from server.videotrack import RenderedVideoTrack

logger = logging.getLogger(__name__)

# Frame metadata leaves in batches: this many frames, or this long after the first waiting.
# The viewer shows each frame when it arrives; the batch only delays its latency figure.
FRAME_BATCH = 5
FRAME_BATCH_S = 0.2

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


class Participant:
    """``render_locally``: this participant renders the other's face itself (relay mode, chosen
    at join): the server then relays the other's motion packets, key frame and style to it
    (each validated here first: decoded, or checked like its own) and renders nothing for it;
    its acknowledgements and intra requests go back to the other's encoder."""

    def __init__(
        self,
        room_id: str,
        seat: int,
        settings: ServerSettings,
        renderer_factory: Callable[[], Any],
        keyframes: KeyframeDecodes,
        render_locally: bool = False,
    ) -> None:
        self.room_id = room_id
        self.seat = seat
        self.settings = settings
        self.render_locally = render_locally
        self.partner: Participant | None = None  # who sees this participant's face
        use_lean_sctp(lean_sctp_requested())
        self.pc = RTCPeerConnection(ice_configuration(settings.ice_servers))
        self.outbound = RenderedVideoTrack(on_frame_sent=self._send_frame_meta)
        self.audio_in = IncomingAudio()  # set_partner points its sink at the partner's audio_out
        self.audio_out = ForwardedAudioTrack(on_anchor=self._send_audio_anchor)
        # decodes on the event loop; the worker attaches the renderer once it is built
        self.receiver = Receiver(get_preset(settings.preset))
        self.worker = RenderWorker(self.receiver, renderer_factory, name=f"render-{room_id}-{seat}")
        self.worker.on_style_active = self._on_style_active
        self.worker.on_style_failed = self._on_style_failed
        self.worker.on_build_failed = self._on_build_failed
        self.keyframes = keyframes
        self.accepted = False  # a hello matching the server's came: its motion is rendered
        self.concealment = ConcealmentTimer(self.receiver, self.worker.submit)
        self._connect_timer: asyncio.TimerHandle | None = None
        self.channels: dict[str, RTCDataChannel] = {}
        self.on_closed: Callable[[Participant], None] | None = None
        self.motion_in = RateMeter()
        self.control_in = RateMeter()
        self.malformed: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.client_report: dict[str, Any] = {}
        self.closed = asyncio.Event()
        self._transfers = ControlTransfers()
        self._decoding_keyframe = False
        # what a partner who renders locally needs on arrival: the newest of each
        self._keyframe: bytes | None = None
        self._style: str | StylePictures | None = None  # a prompt message, or pictures
        self._worker_style: Callable[[], None] | None = None  # kept from it while relaying
        self.packets_relayed = 0
        self._frame_metas: list[list[int | float]] = []  # waiting to leave in a batch
        self._frame_meta_timer: asyncio.TimerHandle | None = None
        self._reading_style_pictures = False
        self._intra_requests = Throttle(protocol.INTRA_REQUEST_INTERVAL_S)
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
            if not self.render_locally:
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

    def _on_motion(self, data: str | bytes) -> None:
        """One motion-channel message: motion packets of this participant's face and, from a
        client that renders locally, its acknowledgement of the partner's frames. What goes on
        to the partner (relayed packets, the acknowledgement) leaves as one message."""
        if not self.accepted:  # no hello yet, or one that was refused (and told why)
            self.refused[protocol.MOTION] += 1
            return
        try:
            items = protocol.unbundle(data)
        except ProtocolError as exc:
            self._count_malformed(protocol.MOTION, exc)
            return
        self.motion_in.add(len(data))
        onward: list[bytes] = []
        newest: DecodedFrame | None = None
        for item in items:
            if item[:1] == bytes([protocol.ACK_MARKER]):
                onward += self._partners_ack(item)
                continue
            frame = self._decode(item)
            partner = self.partner
            if frame is None:
                continue
            if partner is not None and partner.render_locally:
                # its decoder acknowledges, not this one; nothing goes before its hello
                if partner.accepted:
                    onward.append(item)
                    self.packets_relayed += 1
            else:
                self.worker.submit(frame)
                self.concealment.decoded()
                newest = frame
        if newest is not None:  # the newest decoded frame of the message: one ack for all
            self.send(protocol.MOTION, protocol.encode_ack(newest.seq))
        if onward and self.partner is not None:
            for message in protocol.bundle(onward):
                self.partner.send(protocol.MOTION, message)
        if self.receiver.decoder.needs_intra:
            self.request_intra()

    def _decode(self, packet: bytes) -> DecodedFrame | None:
        try:
            return self.receiver.decode(packet)
        except BitstreamError as exc:
            self._count_malformed(protocol.MOTION, exc)
            return None

    def _partners_ack(self, ack: bytes) -> list[bytes]:
        """An acknowledgement from a client that renders locally: a relayed frame of its
        partner's decoded there. It goes on to the partner's encoder, which may predict from
        that frame (and refuses one naming a frame it never sent)."""
        try:
            protocol.parse_ack(ack)
            if not self.render_locally or self.partner is None:
                raise ValueError("an acknowledgement from a client that renders nothing")
        except ValueError as exc:
            self._count_malformed(protocol.MOTION, exc)
            return []
        return [ack]

    @property
    def relaying(self) -> bool:
        """This participant's face goes to a partner who renders it (after a hello of theirs
        that matched): relayed, not rendered here."""
        partner = self.partner
        return partner is not None and partner.render_locally and partner.accepted

    def set_partner(self, partner: Participant | None) -> None:
        """``partner`` sees this participant's face from now on (None: nobody does): rendered
        here for their video track, or relayed to them when they render locally."""
        self.partner = partner
        self.audio_in.sink = None if partner is None else partner.audio_out.put
        self.worker.sink = None
        if partner is not None and not partner.render_locally:
            self.worker.sink = partner.outbound.push
        if self.relaying:
            self.relay_state()
        elif self._worker_style is not None:  # a style that came while relaying
            self._worker_style()
            self._worker_style = None

    def relay_state(self) -> None:
        """Bring a partner who renders locally up to date: this participant's newest key frame
        and style, as they were sent (and checked) here."""
        if self._keyframe is not None:
            self._relay_chunks(self._keyframe)
        self._relay_style()
        self.request_intra()  # the partner holds none of the frames predicted from so far

    def _relay_chunks(self, data: bytes) -> None:
        if self.partner is not None:
            for chunk in split_chunks(data):
                self.partner.send(protocol.CONTROL, chunk)

    def _relay_style(self) -> None:
        style, partner = self._style, self.partner
        if partner is None or style is None:
            return
        if isinstance(style, str):
            partner.send(protocol.CONTROL, style)
            return
        announcement = protocol.encode_message(
            "style_image", id=style.prompt_id, transfers=style.transfers
        )
        partner.send(protocol.CONTROL, announcement)
        for data in style.pictures():
            self._relay_chunks(data)

    def _set_style(self, style: str | StylePictures, for_worker: Callable[[], None]) -> None:
        """A checked prompt message or decoded pictures: relayed, or adapted to here."""
        self._style = style
        if self.relaying:
            self._worker_style = for_worker
            self._relay_style()
        else:
            self._worker_style = None
            for_worker()

    def request_intra(self) -> None:
        """Ask this participant's encoder for an intra frame (at most every 0.25 s)."""
        if self._intra_requests.ready():
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
        elif kind in ("intra", "style") and self.render_locally and self.partner is not None:
            try:
                protocol.check_prompt(message.get("name", ""))  # a style name is a prompt's size
            except ValueError as exc:
                self._count_malformed(protocol.CONTROL, exc)
                return
            self._from_local_renderer(self.partner, message)
        else:
            self._count_malformed(protocol.CONTROL, ProtocolError(f"unexpected {kind!r}"))

    def _from_local_renderer(self, partner: Participant, message: dict[str, Any]) -> None:
        """What a client that renders its partner says about the partner's stream: its decoder
        needs an intra frame, or the partner's prompt is now active there."""
        if message["type"] == "intra":
            partner.request_intra()
        else:
            partner.send(
                protocol.CONTROL,
                protocol.encode_message("style", id=message["id"], name=message["name"]),
            )

    def _on_hello(self, message: dict[str, Any]) -> None:
        """Answer with this server's hello; motion is rendered from a client whose hello matches
        it, and a client whose hello does not is refused (a fatal error)."""
        hello = protocol.encode_hello(
            self.settings.preset, self.receiver.schema.fingerprint(), seat=self.seat
        )
        mismatch = protocol.hello_mismatch(protocol.parse_message(hello), message)
        self.accepted = mismatch is None
        if mismatch is not None:
            self.refuse(*mismatch, fatal=True)
        self.send(protocol.CONTROL, hello)
        if self.accepted and self.render_locally and self.partner is not None:
            self.partner.set_partner(self)  # now it relays to this participant

    def _on_prompt(self, prompt_id: int, text: str) -> None:
        try:
            protocol.check_prompt(text)
        except ValueError as exc:
            self.refuse("prompt", f"prompt {prompt_id} refused: {exc}")
            return
        message = protocol.encode_message("prompt", id=prompt_id, text=text)
        self._set_style(message, lambda: self.worker.set_prompt(prompt_id, text))

    def _on_style_image(self, prompt_id: int, transfers: list[int]) -> None:
        self._transfers.announce(prompt_id, transfers)

    def _on_keyframe_chunk(self, chunk: bytes) -> None:
        try:
            transfer = self._transfers.add(chunk)
        except BitstreamError as exc:
            self.refuse("keyframe", f"key frame refused: {exc}")
            return
        if isinstance(transfer, StylePictures):
            self._on_style_pictures(transfer)
        elif transfer is not None:
            self._on_keyframe(transfer.data)

    def _on_keyframe(self, data: bytes) -> None:
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
        self._keyframe = data
        if self.relaying:
            self._relay_chunks(data)
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
        self._set_style(pictures, lambda: self.worker.set_style_images(prompt_id, images, name))

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
        """A frame went out on the viewer's video track: its metadata leaves in the next
        ``frames`` batch (FRAME_BATCH frames, or FRAME_BATCH_S after the first)."""
        entry = protocol.frame_entry(
            pts, meta.seq, meta.capture_ms, meta.prompt_id, meta.render_ms, meta.concealed
        )
        self._frame_metas.append(entry)
        if len(self._frame_metas) >= FRAME_BATCH:
            self._flush_frame_metas()
        elif self._frame_meta_timer is None and not self._closing:
            loop = asyncio.get_running_loop()
            self._frame_meta_timer = loop.call_later(FRAME_BATCH_S, self._flush_frame_metas)

    def _flush_frame_metas(self) -> None:
        if self._frame_meta_timer is not None:
            self._frame_meta_timer.cancel()
            self._frame_meta_timer = None
        if self._frame_metas:
            self.send(protocol.STATS, protocol.encode_message("frames", frames=self._frame_metas))
            self._frame_metas = []

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
            "renders_partner": "locally" if self.render_locally else "on the server",
            "motion_packets_relayed": self.packets_relayed,
            "frames_sent_to_viewer": self.outbound.frames_sent,
            "frames_concealed": self.concealment.frames_concealed,
            "frames_superseded": self.outbound.frames_superseded,
            "decoder": {
                **vars(self.receiver.decoder.stats),
                "dropped": dict(self.receiver.decoder.stats.dropped),
            },
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
        self.concealment.close()
        for timer in (self._connect_timer, self._frame_meta_timer):
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
