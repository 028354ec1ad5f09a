"""Key frame (and style picture) decoding for every participant of the server, bounded.

Each decode of a client's key frame or style pictures allocates its pictures (up to the
server's max side, or the sent-picture limits of ``models.style_images``) and takes a core for a
moment. They run here, on a few threads of their own (not the default pool
that joins and the event loop's helpers use), and at most ``threads + queue`` are admitted at
once, server-wide: one more is refused at once (``KeyframesBusy``), never queued, so a flood of
key frames costs the server a fixed amount of memory and CPU.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from codec.keyframe import decode_keyframe
from models.style_images import decode_sent_style_images

T = TypeVar("T")


class KeyframesBusy(Exception):
    """The server already has as many key frames decoding or waiting as it admits."""


class KeyframeDecodes:
    def __init__(self, threads: int, queue: int, max_side: int) -> None:
        if threads < 1 or queue < 0:
            raise ValueError(f"need a decode thread and a queue >= 0, got {threads} and {queue}")
        self.admitted = threads + queue
        self._max_side = max_side
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, "keyframe")
        self._slots = threading.BoundedSemaphore(self.admitted)
        self.decoded = 0
        self.refused = 0

    async def decode(self, data: bytes) -> np.ndarray:
        """The key frame's HxWx3 uint8 RGB picture; BitstreamError if it is malformed,
        KeyframesBusy if ``admitted`` decodes are already running or waiting."""
        return await self._admitted(decode_keyframe, data, self._max_side)

    async def decode_style_images(self, pictures: Sequence[bytes]) -> list[np.ndarray]:
        """Sent style pictures (one decode slot for all) -> HxWx3 uint8 RGB each; ValueError
        naming the picture ("style picture 2: ...") if one is not a picture within the sent
        limits, KeyframesBusy as :meth:`decode`."""
        return await self._admitted(decode_sent_style_images, list(pictures))

    async def _admitted(self, decode: Callable[..., T], *args: object) -> T:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            raise KeyframesBusy(
                f"the server is decoding {self.admitted} key frames already: send it again later"
            )
        job = self._executor.submit(decode, *args)
        # the slot is held until the thread is done, even if whoever waits for it is cancelled
        job.add_done_callback(lambda _: self._slots.release())
        result = await asyncio.wrap_future(job)
        self.decoded += 1
        return result

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
