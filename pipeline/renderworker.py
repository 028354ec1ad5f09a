"""Rendering off the event loop: one sender's decoded motion in, stylized frames out.

A RenderWorker renders one sender's face (their key frame, their prompt) through their
``pipeline.Receiver`` on its own thread, newest frame first: it holds at most one pending
frame, so a slow renderer lowers the frame rate instead of growing the delay. Its renderer
(networks, style threads) is built on that thread when it starts. The server runs one per
participant (frames go to the other's video track); a client that renders locally runs one
for the other participant (frames go to its window and recording).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from codec import DecodedFrame
    from models.face_crop import FaceCropper
    from pipeline.receiver import Receiver

logger = logging.getLogger(__name__)

NO_STYLE_ID = -1


@dataclass(frozen=True)
class FrameMeta:
    """What the viewer needs to measure a rendered frame: which capture, which style."""

    seq: int
    capture_ms: int
    prompt_id: int
    render_ms: float
    concealed: bool = False  # motion extrapolated for a frame that did not arrive


FrameSink = Callable[[np.ndarray, FrameMeta], None]


class RenderWorker:
    """Renders one participant's motion through their ``pipeline.Receiver``, newest frame
    first (the participant decodes on the event loop and submits the decoded frames).

    ``start`` builds the renderer with ``renderer_factory`` on the worker's one thread and
    attaches it to the receiver; that thread then runs every renderer call in order (so a key
    frame or prompt that arrives while the renderer is being built waits for it), and the event
    loop keeps serving the network.
    """

    def __init__(self, receiver: Receiver, renderer_factory: Callable[[], Any], name: str) -> None:
        self._receiver = receiver
        self._renderer_factory = renderer_factory
        self._renderer: Any = None
        self._name = name
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: DecodedFrame | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._style_task: asyncio.Task[None] | None = None
        self._cropper: FaceCropper | None = None  # built on first use, on the worker's thread
        self._closing = False
        self.sink: FrameSink | None = None
        self.has_reference = False
        self.active_prompt_id = NO_STYLE_ID
        self.on_style_active: Callable[[int, str], None] | None = None  # prompt id, style
        self.on_style_failed: Callable[[int, str], None] | None = None
        self.on_build_failed: Callable[[], None] | None = None
        self.renderer_state = "not built"  # -> "building" -> "ready" or "failed"
        self.frames_rendered = 0
        self.frames_stale = 0
        self.frames_without_reference = 0
        self.frames_without_viewer = 0
        self.render_errors = 0
        self.render_ms = 0.0  # exponential moving average

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Build the renderer, then render; calling it again does nothing."""
        if self._task is not None:
            return
        self.renderer_state = "building"
        built = asyncio.get_running_loop().run_in_executor(self._executor, self._build)
        self._task = asyncio.create_task(self._run(built), name=self._name)

    def _build(self) -> None:
        renderer = self._renderer_factory()
        self._renderer = renderer  # closed with the worker, even when attaching refuses it
        self._receiver.attach(renderer)

    def _with_renderer(self, function: Callable[..., Any], *args: Any) -> Any:
        """On the worker's thread, which has run the build before any of these calls."""
        if self._renderer is None:
            raise RuntimeError("this participant has no renderer: building it failed")
        return function(*args)

    def _call_renderer(self, method: str, *args: Any) -> Any:
        return self._with_renderer(lambda: getattr(self._renderer, method)(*args))

    async def _in_executor(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._task is None:
            raise RuntimeError("the render worker has not been started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def submit(self, frame: DecodedFrame) -> None:
        if self._pending is not None:
            self.frames_stale += 1
        self._pending = frame
        self._wake.set()

    async def set_reference(self, image: np.ndarray) -> None:
        """image: HxWx3 uint8 RGB, the sender's key frame."""
        await self._in_executor(self._with_renderer, self._receiver.set_reference, image)
        self.has_reference = True

    def set_prompt(self, prompt_id: int, text: str) -> None:
        """Start adapting to ``text``; frames switch to it once the renderer says it is active
        (``on_style_active``), or ``on_style_failed`` says why it cannot."""
        self._start_style(prompt_id, self._call_renderer, "set_style", text or None)

    def set_style_images(self, prompt_id: int, images: Sequence[np.ndarray], name: str) -> None:
        """Start adapting a style named ``name`` to the look of ``images`` (HxWx3 uint8 RGB
        style pictures, each cut around its face when it has one), like :meth:`set_prompt`."""
        self._start_style(prompt_id, self._set_style_images, list(images), name)

    def _set_style_images(
        self, images: list[np.ndarray], name: str
    ) -> concurrent.futures.Future[str]:
        """On the worker's thread: the face detector is built there, once."""
        if self._cropper is None:
            from models.face_crop import FaceCropper

            self._cropper = FaceCropper()
        future: concurrent.futures.Future[str] = self._call_renderer(
            "set_style_images", images, name, self._cropper
        )
        return future

    def _start_style(self, prompt_id: int, start: Callable[..., Any], *args: Any) -> None:
        if self._closing:  # the call is ending: its threads are going, nobody waits for a style
            logger.info("%s: style for prompt %d ignored: closing", self._name, prompt_id)
            return
        if self._style_task is not None:
            self._style_task.cancel()
        self._style_task = asyncio.create_task(self._await_style(prompt_id, start, *args))

    async def _await_style(self, prompt_id: int, start: Callable[..., Any], *args: Any) -> None:
        """``start(*args)`` on the worker's thread returns the renderer's style future."""
        try:
            style_future: concurrent.futures.Future[str] = await self._in_executor(start, *args)
            key = await asyncio.wrap_future(style_future)
        except (RuntimeError, ValueError, KeyError) as exc:
            logger.warning("style for prompt %d failed: %s", prompt_id, exc)
            if self.on_style_failed is not None:
                self.on_style_failed(prompt_id, str(exc))
            return
        logger.info("prompt %d active as style %r", prompt_id, key)
        self.active_prompt_id = prompt_id
        if self.on_style_active is not None:
            self.on_style_active(prompt_id, key)

    async def _run(self, built: asyncio.Future[None]) -> None:
        try:
            await built
        # what building networks raises: a bad or vanished checkpoint, no memory, no device
        except (RuntimeError, ValueError, OSError) as exc:
            self.renderer_state = "failed"
            logger.error("%s: building the renderer failed: %s", self._name, exc)
            if self.on_build_failed is not None:
                self.on_build_failed()
            return
        self.renderer_state = "ready"
        while True:
            await self._wake.wait()
            self._wake.clear()
            frame, self._pending = self._pending, None
            if frame is None:
                continue
            if not self.has_reference:
                self.frames_without_reference += 1
                continue
            sink = self.sink
            if sink is None:
                self.frames_without_viewer += 1
                continue
            prompt_id = self.active_prompt_id
            started = time.perf_counter()
            try:
                image = await self._in_executor(
                    self._with_renderer, self._receiver.render, frame.features
                )
            except (RuntimeError, ValueError) as exc:
                self.render_errors += 1
                logger.warning("render failed for frame %d: %s", frame.seq, exc)
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.render_ms = (
                elapsed_ms
                if self.frames_rendered == 0
                else (0.9 * self.render_ms + 0.1 * elapsed_ms)
            )
            self.frames_rendered += 1
            meta = FrameMeta(
                frame.seq, frame.capture_time_ms, prompt_id, elapsed_ms, frame.concealed
            )
            sink(image, meta)

    def stats(self) -> dict[str, Any]:
        return {
            "frames_rendered": self.frames_rendered,
            "frames_stale": self.frames_stale,
            "frames_without_reference": self.frames_without_reference,
            "frames_without_viewer": self.frames_without_viewer,
            "render_errors": self.render_errors,
            "render_ms": round(self.render_ms, 2),
            "active_prompt_id": self.active_prompt_id,
            "renderer": self.renderer_state,
        }

    async def close(self) -> None:
        """Stop rendering, wait for the render thread, and free the renderer (and GPU memory);
        style requests from now on are ignored."""
        self._closing = True
        for task in (self._task, self._style_task):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._task, self._style_task) if t is not None), return_exceptions=True
        )
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        if self._renderer is not None:
            await asyncio.to_thread(self._renderer.close)
            self._renderer = None
            _release_gpu_memory()


def _release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
