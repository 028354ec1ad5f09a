"""The other participant's face rendered here ("relay" mode, chosen at join).

The server relays the other's motion packets (on ``motion``), key frame and style pictures (as
chunked transfers on ``control``) and prompts, each checked there first; this client decodes
them with its own ``pipeline.Receiver`` and renders on a ``pipeline.renderworker.RenderWorker``
thread (``lite-128`` on a CPU, a larger preset on a GPU), conceals a frame that does not arrive
(``pipeline.concealtimer``), acknowledges each decoded frame with its own next motion message
(the other's encoder predicts from those) and asks for an intra frame when its decoder lost the
reference. Rendered frames go to the ``Viewer`` (shown frames, latency, recording, window) as
the server's would. The downlink carries motion, not video: a few kbps.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np

from client.config import CallConfig
from client.connection import CallConnection
from client.viewer import Viewer
from codec import BitstreamError
from codec.keyframe import decode_keyframe
from models.config import get_preset
from models.style_images import decode_sent_style_images, picture_style_name
from pipeline import protocol
from pipeline.concealtimer import ConcealmentTimer
from pipeline.meters import Throttle
from pipeline.receiver import Receiver
from pipeline.renderworker import FrameMeta, RenderWorker
from pipeline.transfers import ControlTransfers, StylePictures

logger = logging.getLogger(__name__)


class LocalViewer:
    def __init__(
        self,
        config: CallConfig,
        connection: CallConnection,
        viewer: Viewer,
        acknowledge: Callable[[bytes], None],
    ) -> None:
        """``acknowledge``: sends an acknowledgement of the other's frame (with this
        participant's next motion message)."""
        self.name = config.name
        self.connection = connection
        self.viewer = viewer
        self.acknowledge = acknowledge
        self.receiver = Receiver(get_preset(config.preset))

        def build() -> Any:
            from models import Renderer  # torch: loaded on the render thread

            return Renderer(preset=config.preset, checkpoint=config.checkpoint)

        self.worker = RenderWorker(self.receiver, build, name=f"render-{config.name}")
        self.worker.sink = self._on_rendered
        self.worker.on_style_active = self._on_style_active
        self.worker.on_style_failed = self._on_style_failed
        self.concealment = ConcealmentTimer(self.receiver, self.worker.submit)
        self.malformed: Counter[str] = Counter()
        self._transfers = ControlTransfers()
        self._intra_requests = Throttle(protocol.INTRA_REQUEST_INTERVAL_S)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Build the renderer (on the render thread) while the call sets up."""
        self.worker.start()

    # -- from the server -----------------------------------------------------------------------

    def on_packet(self, packet: bytes) -> None:
        """A relayed motion packet of the other participant."""
        try:
            frame = self.receiver.decode(packet)
        except BitstreamError as exc:
            self.malformed[protocol.MOTION] += 1
            logger.debug("%s: dropping malformed relayed packet: %s", self.name, exc)
            frame = None
        if frame is not None:
            self.worker.submit(frame)
            self.acknowledge(protocol.encode_ack(frame.seq))
            self.concealment.decoded()
        if self.receiver.decoder.needs_intra and self._intra_requests.ready():
            self.connection.send(protocol.CONTROL, protocol.encode_message("intra"))

    def on_prompt(self, prompt_id: int, text: str) -> None:
        """The other participant's prompt: adapted to here, in the background."""
        self.worker.set_prompt(prompt_id, text)

    def on_style_image(self, prompt_id: int, transfers: list[int]) -> None:
        self._transfers.announce(prompt_id, transfers)

    def on_chunk(self, chunk: bytes) -> None:
        """A chunk of the other's key frame or style pictures."""
        try:
            transfer = self._transfers.add(chunk)
        except BitstreamError as exc:
            self.malformed[protocol.CONTROL] += 1
            logger.warning("%s: dropping a relayed transfer: %s", self.name, exc)
            return
        if isinstance(transfer, StylePictures):
            self._spawn(self._set_style_pictures(transfer))
        elif transfer is not None:
            self._spawn(self._set_reference(transfer.data))

    async def _set_reference(self, data: bytes) -> None:
        try:
            image = await asyncio.to_thread(decode_keyframe, data)
            await self.worker.set_reference(image)
        # not a key frame, or one the renderer cannot use: the server checked it, so this is a
        # fault of the relay; frames wait for the next key frame
        except (BitstreamError, RuntimeError, ValueError) as exc:
            self.malformed["keyframe"] += 1
            logger.warning("%s: relayed key frame not usable: %s", self.name, exc)
            return
        logger.info("%s: the other's key frame %s", self.name, image.shape)

    async def _set_style_pictures(self, pictures: StylePictures) -> None:
        try:
            images: list[np.ndarray] = await asyncio.to_thread(
                decode_sent_style_images, pictures.pictures()
            )
        except ValueError as exc:
            self.malformed["style_image"] += 1
            logger.warning("%s: relayed style pictures not usable: %s", self.name, exc)
            return
        name = picture_style_name(pictures.pictures())
        self.worker.set_style_images(pictures.prompt_id, images, name)

    # -- rendered ------------------------------------------------------------------------------

    def _on_rendered(self, image: np.ndarray, meta: FrameMeta) -> None:
        fields = {
            "seq": meta.seq,
            "capture_ms": meta.capture_ms,
            "prompt_id": meta.prompt_id,
            "concealed": int(meta.concealed),
        }
        self.viewer.show(image, self.connection.clock.now_ms(), fields)

    def _on_style_active(self, prompt_id: int, style: str) -> None:
        """The other's prompt renders here now: they hear it as from a server."""
        message = protocol.encode_message("style", id=prompt_id, name=style)
        self.connection.send(protocol.CONTROL, message)

    def _on_style_failed(self, prompt_id: int, reason: str) -> None:
        logger.warning(
            "%s: the other's prompt %d cannot render here: %s", self.name, prompt_id, reason
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop concealing and rendering; free the renderer."""
        self.concealment.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.worker.close()
