"""The receiving side, frame by frame: packet -> motion features -> rendered face.

A Receiver is built from one renderer: its model config gives the motion schema
(``codec.model_schema``), the same the Sender of that config codes with. It owns the
``MotionDecoder``; ``decode`` and ``render`` are also callable apart, so a server can decode
on its event loop and render on a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

import numpy as np

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

    def __init__(self, renderer: FrameRenderer) -> None:
        self.renderer = renderer
        self.schema = model_schema(renderer.config)
        self.decoder = MotionDecoder(self.schema)

    def set_keyframe(self, data: bytes) -> np.ndarray:
        """Decode the key frame and render from it from now on; returns the decoded picture
        (BitstreamError when ``data`` is no key frame)."""
        reference = decode_keyframe(data)
        self.renderer.set_reference(reference)
        return reference

    def decode(self, packet: bytes) -> DecodedFrame | None:
        """One packet -> its frame, or None when dropped (counted in ``decoder.stats``)."""
        return self.decoder.decode(packet)

    def render(self, features: np.ndarray) -> np.ndarray:
        """Decoded features -> size x size x 3 uint8 RGB, in the renderer's active style."""
        return self.renderer.render(features)

    def receive(self, packet: bytes) -> np.ndarray | None:
        """One packet -> the rendered frame, or None when the decoder dropped it."""
        decoded = self.decode(packet)
        return None if decoded is None else self.render(decoded.features)
