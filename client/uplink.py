"""What a participant sends: its face's key frame, then its motion frame by frame, prompts and
style pictures.

The camera (or file) is read on a capture thread (``client.capture.CaptureThread``, paced at the
call's fps; when extraction falls behind, the newest frame wins); each frame is cut and its
motion extracted by ``pipeline.Sender`` on the Uplink's own worker thread, then coded on the
event loop, where the server's acknowledgements and intra requests reach the same encoder.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from client.audio import CapturedAudioTrack, Microphone, audio_source
from client.capture import CaptureThread, open_source
from client.config import CallConfig
from client.connection import CallConnection, ServerClock
from codec.keyframe import split_chunks
from models.style_images import picture_style_name, read_sent_style_images
from pipeline import protocol
from pipeline.sender import Sender

logger = logging.getLogger(__name__)


@dataclass
class PromptSent:
    id: int
    text: str
    sent_ms: float  # server call clock


class Uplink:
    """Sends for one participant over ``connection`` (opened by the caller)."""

    def __init__(self, config: CallConfig, connection: CallConnection) -> None:
        from models import MotionExtractor  # torch: seconds to import, only when calling

        self.name = config.name
        self.connection = connection
        extractor = MotionExtractor(preset=config.preset, checkpoint=config.checkpoint)
        # the server acknowledges each decoded frame: inter frames predict from those
        self.sender = Sender(extractor, fps=config.fps, feedback=True)
        # a video file plays on the call clock from its first picture or sound, whichever is
        # asked first (client.capture.Playhead): both start at that instant
        clock = connection.clock.now_ms
        source = open_source(
            config.input, config.fps, config.motion_amplitude, config.seed, clock=clock
        )
        self.capture = CaptureThread(source, config.fps, clock)
        self.audio: CapturedAudioTrack | None = None  # --mute: none
        if not config.mute:
            self.audio = CapturedAudioTrack(
                audio_source(config.input, source, clock),
                ServerClock.local_ms,
                lambda: connection.clock.offset_ms,
            )
        self._extracting = ThreadPoolExecutor(1, thread_name_prefix=f"extract-{config.name}")
        self.prompt_id = -1
        self.prompts: list[PromptSent] = []
        self.frames_sent = 0
        self.motion_bytes = 0
        self.control_bytes = 0  # JSON messages; the key frame's chunks are counted apart
        self.keyframe_bytes = 0
        self.style_image_bytes = 0
        self.acks_refused = 0
        self.messages_sent = 0  # on the motion channel: packets are bundled
        self.first_sent = self.last_sent = 0.0  # time.monotonic()
        self.bundle = config.bundle
        self._held: list[bytes] = []  # packets waiting to fill a bundle
        self._ack: bytes | None = None  # of the other's newest frame decoded here, to send

    @property
    def schema_fingerprint(self) -> str:
        return self.sender.schema.fingerprint()

    async def send_keyframe(self) -> None:
        """Cut the face out of the next captured frame and send it as the reference."""
        image, _ = await self.capture.next()
        loop = asyncio.get_running_loop()
        face = await loop.run_in_executor(self._extracting, self.sender.tracker.crop, image)
        data = self.sender.keyframe(face)
        for chunk in split_chunks(data):
            if self.connection.send(protocol.CONTROL, chunk):
                self.keyframe_bytes += len(chunk)
        logger.info("%s: key frame %d bytes", self.name, len(data))

    async def send_motion(self) -> None:
        """Send each captured frame's motion until the motion channel closes."""
        loop = asyncio.get_running_loop()
        while True:
            image, captured_ms = await self.capture.next()
            _, features = await loop.run_in_executor(self._extracting, self.sender.extract, image)
            packet = self.sender.encode(features, max(0, round(captured_ms)), self.prompt)
            self._held.append(packet)
            if len(self._held) < self.bundle:
                continue
            if not self._send_held():
                return

    def _send_held(self) -> bool:
        """Send the held packets and the acknowledgement waiting, bundled; False when the
        motion channel is closed."""
        items = self._held + ([self._ack] if self._ack is not None else [])
        for message in protocol.bundle(items):
            if not self.connection.send(protocol.MOTION, message):
                return False
            self.messages_sent += 1
        self.last_sent = time.monotonic()
        if self.frames_sent == 0:
            self.first_sent = self.last_sent
        self.motion_bytes += sum(map(len, self._held))
        self.frames_sent += len(self._held)
        self._held, self._ack = [], None
        return True

    def acknowledge(self, ack: bytes) -> None:
        """An acknowledgement of the other's frame (rendering locally): it leaves with the next
        motion message, replacing an older one still waiting."""
        self._ack = ack

    @property
    def prompt(self) -> int:
        """The prompt id motion packets carry: the newest prompt sent (0 before any)."""
        return max(self.prompt_id, 0)

    def send_control(self, message: str) -> None:
        if self.connection.send(protocol.CONTROL, message):
            self.control_bytes += len(message)

    def send_prompt(self, text: str) -> None:
        self.prompt_id += 1
        self.prompts.append(PromptSent(self.prompt_id, text, self.connection.clock.now_ms()))
        self.send_control(protocol.encode_message("prompt", id=self.prompt_id, text=text))
        logger.info("%s: prompt %d %r", self.name, self.prompt_id, text)

    def send_style_images(self, pictures: list[bytes]) -> None:
        """Ask for a style adapted to ``pictures`` (from
        ``models.style_images.encode_style_image``): announced on ``control`` under the next
        prompt id, then each picture in chunks."""
        self.prompt_id += 1
        name = picture_style_name(pictures)
        self.prompts.append(PromptSent(self.prompt_id, name, self.connection.clock.now_ms()))
        transfers = [zlib.crc32(data) for data in pictures]
        self.send_control(
            protocol.encode_message("style_image", id=self.prompt_id, transfers=transfers)
        )
        for data in pictures:
            for chunk in split_chunks(data):
                if self.connection.send(protocol.CONTROL, chunk):
                    self.style_image_bytes += len(chunk)
        logger.info(
            "%s: prompt %d: %d style pictures, %d bytes",
            self.name,
            self.prompt_id,
            len(pictures),
            sum(map(len, pictures)),
        )

    async def send_style_images_from(self, paths: list[str]) -> None:
        """Read and re-encode the style pictures at ``paths`` (files or folders) off the event
        loop, then send them; a picture that cannot be read is said in the log, and the call
        goes on."""
        try:
            pictures = await asyncio.to_thread(read_sent_style_images, paths)
        except ValueError as exc:
            logger.warning("%s: style picture not sent: %s", self.name, exc)
            return
        self.send_style_images(pictures)

    def on_ack(self, data: str | bytes) -> None:
        """The server decoded a frame: later frames may predict from it."""
        try:
            self.sender.encoder.acknowledge(protocol.parse_ack(data))
        # not an acknowledgement, or one naming a frame not sent: the reference stays
        except ValueError as exc:
            self.acks_refused += 1
            logger.debug("%s: ignoring acknowledgement: %s", self.name, exc)

    def request_intra(self) -> None:
        self.sender.encoder.request_intra()

    def sending_s(self) -> float:
        """Seconds from the first to the last motion packet."""
        return self.last_sent - self.first_sent

    async def close(self) -> None:
        """Stop capturing (pictures and sound), the extraction thread and the face tracker's
        thread."""
        if self.audio is not None and isinstance(self.audio.source, Microphone):
            await asyncio.to_thread(self.audio.source.close)
        await self.capture.close()
        await asyncio.to_thread(self._extracting.shutdown, True, cancel_futures=True)
        await asyncio.to_thread(self.sender.close)
