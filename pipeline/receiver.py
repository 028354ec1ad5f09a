"""The receiving side, frame by frame: packet -> motion features -> rendered face.

A Receiver is built from one model config, which gives the motion schema
(``codec.model_schema``), the same the Sender of that config codes with. It owns the
``MotionDecoder`` and the ``Concealer`` (the motion of a frame that did not arrive); ``decode``
and ``render`` are also callable apart, so a server can decode on its event loop and render on
a worker thread. The renderer may come later than the config (``attach``): a server answers a
participant, and decodes their motion, before its networks are loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

import numpy as np

from codec.concealment import Concealer
from codec.keyframe import decode_keyframe
from codec.motiondecoder import DecodedFrame, MotionDecoder
from codec.schema import model_schema
from models.config import ModelConfig

if TYPE_CHECKING:
    from models.face_crop import FaceCropper


class FrameRenderer(Protocol):
    """What a Receiver needs from ``models.Renderer``."""

    @property
    def config(self) -> ModelConfig: ...

    def set_reference(self, image: np.ndarray) -> None: ...

    def set_style(self, prompt: str | None) -> Future[str]: ...

    def set_style_images(
        self, images: Sequence[np.ndarray], name: str, cropper: FaceCropper | None = None
    ) -> Future[str]: ...

    def render(self, features: np.ndarray) -> np.ndarray: ...


class Receiver:
    """Renders one sender's stream: ``set_keyframe`` once, then ``receive`` per packet."""

    def __init__(self, config: ModelConfig, renderer: FrameRenderer | None = None) -> None:
        self.config = config
        self.schema = model_schema(config)
        self.decoder = MotionDecoder(self.schema)
        self.concealer = Concealer(self.schema)
        self._renderer: FrameRenderer | None = None
        if renderer is not None:
            self.attach(renderer)

    def attach(self, renderer: FrameRenderer) -> None:
        """Render with ``renderer`` from now on; refused (ValueError) when it reads another
        motion layout than the one this Receiver decodes."""
        theirs = model_schema(renderer.config)
        if theirs != self.schema:
            raise ValueError(
                f"the renderer reads {theirs.size} motion numbers a frame, the stream carries "
                f"{self.schema.size}: load the checkpoint of the stream's preset"
            )
        self._renderer = renderer

    @property
    def renderer(self) -> FrameRenderer:
        if self._renderer is None:
            raise RuntimeError("this receiver has no renderer yet: attach() one first")
        return self._renderer

    def set_keyframe(self, data: bytes) -> np.ndarray:
        """Decode the key frame and render from it from now on; returns the decoded picture
        (BitstreamError when ``data`` is no key frame)."""
        reference = decode_keyframe(data)
        self.set_reference(reference)
        return reference

    def set_reference(self, image: np.ndarray) -> None:
        """A key frame decoded already (HxWx3 uint8 RGB) becomes the picture rendered from."""
        self.renderer.set_reference(image)

    def decode(self, packet: bytes) -> DecodedFrame | None:
        """One packet -> its frame, or None when dropped (counted in ``decoder.stats``)."""
        frame = self.decoder.decode(packet)
        if frame is not None:
            self.concealer.decoded(frame)
        return frame

    def conceal(self) -> DecodedFrame | None:
        """The next frame's motion extrapolated (``codec.concealment``), when the packet is
        overdue; None when nothing can be concealed."""
        return self.concealer.conceal()

    def render(self, features: np.ndarray) -> np.ndarray:
        """Decoded features -> size x size x 3 uint8 RGB, in the renderer's active style."""
        return self.renderer.render(features)

    def receive(self, packet: bytes) -> np.ndarray | None:
        """One packet -> the rendered frame, or None when the decoder dropped it."""
        decoded = self.decode(packet)
        return None if decoded is None else self.render(decoded.features)
