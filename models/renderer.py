"""Receiver side: reference frame + motion features (+ style prompt) -> stylised frame.

A :class:`Renderer` is one participant's state on networks that may be shared
(:class:`models.inference.InferenceWrapper`, loaded once per server) with a style manager that
may be shared too (:class:`models.style_manager.StyleManager`): the reference (its keypoints,
its downscaled copy, its encoded features), the active style, and the preallocated tensors
each frame's features are copied into. The reference is encoded once
(:meth:`Renderer.set_reference`); each frame then runs only the dense motion network and the
generator's warp-bottleneck-decoder. A style switches between two frames to the wrapper's
styled view of the generator for its delta (nothing is changed in place, so participants with
different styles render side by side). A prompt that is neither a built-in style nor cached is
adapted with CLIP on a background thread while the previous style keeps rendering; style
pictures (an "image prompt", :meth:`Renderer.set_style_images`) are adapted the same way with
the exemplar losses, which need no pretrained network.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from models.checkpoint import LoadedModels
from models.config import ModelConfig
from models.extractor import MotionExtractor
from models.face_crop import FaceCropper
from models.frames import frame_to_tensor, tensor_to_frame
from models.generator import OcclusionAwareGenerator
from models.inference import InferenceWrapper
from models.layer_selection import AdaptationCancelled, AdaptationConfig
from models.motion_features import unpack_motion
from models.style_delta import StyleCache, StyleDelta
from models.style_manager import NO_STYLE, LossBuilder, StyleManager
from models.style_names import MAX_PROMPT_CHARS, custom_style_key
from models.text_encoder import DEFAULT_CLIP_MODEL, ClipGuide

__all__ = ["ENCODED_STYLES_KEPT", "MAX_PROMPT_CHARS", "NO_STYLE", "Renderer"]

log = logging.getLogger(__name__)

ENCODED_STYLES_KEPT = 2  # encoded references a renderer keeps: the active style's and one more


class Renderer:
    """Renders one participant: ``set_reference`` once, ``render`` per frame.

    Pass ``wrapper`` (and ``styles``) to render with networks loaded once and shared with other
    renderers; without them the renderer loads its own from ``preset``/``checkpoint``/``models``
    (see :class:`InferenceWrapper` for ``device``, ``half``, ``channels_last``, ``compile``) and
    builds its own :class:`StyleManager` from the CLIP and cache arguments. Calls on one
    renderer are serialised; different renderers on one wrapper render concurrently.
    """

    def __init__(
        self,
        preset: str = "lite-128",
        checkpoint: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        *,
        wrapper: InferenceWrapper | None = None,
        styles: StyleManager | None = None,
        models: LoadedModels | None = None,
        clip: ClipGuide | None = None,
        clip_weights: str | os.PathLike[str] | None = None,
        clip_model: str = DEFAULT_CLIP_MODEL,
        style_cache_dir: str | os.PathLike[str] | None = None,
        style_cache: StyleCache | None = None,
        adaptation: AdaptationConfig | None = None,
        half: bool | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
    ) -> None:
        if styles is not None and wrapper is not None and styles.wrapper is not wrapper:
            raise ValueError("the style manager was built for other networks than the wrapper")
        self.wrapper = wrapper or (
            styles.wrapper
            if styles is not None
            else InferenceWrapper(
                preset,
                checkpoint,
                device,
                models=models,
                half=half,
                channels_last=channels_last,
                compile=compile,
            )
        )
        self.styles = styles or StyleManager(
            self.wrapper,
            clip=clip,
            clip_weights=clip_weights,
            clip_model=clip_model,
            style_cache_dir=style_cache_dir,
            style_cache=style_cache,
            adaptation=adaptation,
        )
        self._lock = threading.Lock()  # held while this participant's state is used or changed
        self._style_lock = threading.Lock()  # held briefly for style bookkeeping only
        self._generation = 0
        self._pending: Future[str] | None = None
        self.style_key = NO_STYLE
        self._delta: StyleDelta | None = None
        self._generator, self._decode = self.wrapper.styled(None)
        self._swapper = ThreadPoolExecutor(1, thread_name_prefix="style-swap")
        self._adapter = ThreadPoolExecutor(1, thread_name_prefix="style-adapt")
        self._source: torch.Tensor | None = None
        self._source_small: torch.Tensor | None = None
        self._source_features: list[torch.Tensor] | None = None
        # Encoded reference of the last styles used (their deltas change the encoder), so
        # switching back skips the encoder; bounded: each is a few MB (3.7 MB on lite-128).
        self._features_by_style: OrderedDict[StyleDelta | None, list[torch.Tensor]] = OrderedDict()
        self._kp_source: dict[str, torch.Tensor] = {}
        self._kp_driving = self._driving_buffers()

    @property
    def size(self) -> int:
        """Side of the square frames rendered (and of the reference, resized if needed)."""
        return self.wrapper.size

    @property
    def config(self) -> ModelConfig:
        return self.wrapper.config

    @property
    def device(self) -> torch.device:
        return self.wrapper.device

    @property
    def dtype(self) -> torch.dtype:
        return self.wrapper.dtype

    @property
    def extractor(self) -> MotionExtractor:
        """A motion extractor on the same (shared) keypoint detector."""
        return self.wrapper.extractor

    @property
    def generator(self) -> OcclusionAwareGenerator:
        """The shared, unstyled generator (never changed by a style)."""
        return self.wrapper.generator

    @property
    def adaptation(self) -> AdaptationConfig:
        """Adaptation settings of the style manager (shared with its other renderers)."""
        return self.styles.adaptation

    @adaptation.setter
    def adaptation(self, config: AdaptationConfig) -> None:
        self.styles.adaptation = config

    def state_bytes(self) -> int:
        """Bytes of tensors this participant holds (the shared networks not counted)."""
        with self._lock:
            tensors = [t for t in (self._source, self._source_small) if t is not None]
            tensors += [t for f in self._features_by_style.values() for t in f]
            tensors += [*self._kp_source.values(), *self._kp_driving.values()]
        distinct = {id(t): t for t in tensors}.values()  # the image is also features[0]
        return sum(t.numel() * t.element_size() for t in distinct)

    def style_names(self) -> list[str]:
        """Built-in styles of the checkpoint, usable without CLIP."""
        return self.styles.names()

    def known_style(self, prompt: str) -> StyleDelta | None:
        """The delta ``prompt`` selects without adaptation (built-in or cached), else None."""
        return self.styles.lookup(prompt)[1]

    def set_reference(self, image: np.ndarray) -> None:
        """Use ``image`` (HxWx3 uint8 RGB, resized to ``size``) as the frame to animate."""
        source = frame_to_tensor(image, self.size, self.device, self.dtype)
        if self.wrapper.channels_last:
            source = source.contiguous(memory_format=torch.channels_last)
        with self._lock, torch.inference_mode():
            self._kp_source = self.wrapper.kp_detector(source)
            self._source = source
            self._source_small = self._generator.dense_motion_network.downscale(source)
            self._features_by_style.clear()
            self._source_features = self._encoded_source()

    def render(self, features: np.ndarray) -> np.ndarray:
        """Motion features ((feature_size,) float32) -> size x size x 3 uint8 RGB frame.

        ValueError (with the reason) for NaN/inf, out-of-range or wrongly shaped features;
        RuntimeError before a reference is set.
        """
        kp, jacobian = unpack_motion(features, self.config.num_kp, self.config.estimate_jacobian)
        with self._lock, torch.inference_mode():
            if self._source_features is None or self._source_small is None:
                raise RuntimeError("no reference frame: call set_reference(image) before render")
            self._kp_driving["value"][0].copy_(torch.from_numpy(kp))
            if jacobian is not None:
                self._kp_driving["jacobian"][0].copy_(torch.from_numpy(jacobian))
            motion = self._generator.dense_motion_network.predict(
                self._source_small, self._kp_driving, self._kp_source
            )
            return tensor_to_frame(self._decode(self._source_features, motion))

    def set_style(self, prompt: str | None) -> Future[str]:
        """Switch to the style ``prompt`` asks for; returns at once.

        The future resolves to the style key once frames render in that style: the built-in
        style name the prompt names or describes, else the normalised prompt, or
        :data:`NO_STYLE` for None/empty. Built-in and cached styles switch within a frame;
        others are adapted with CLIP in the background (ValueError listing the built-in styles
        when no CLIP is configured). A newer call cancels an older one's pending future.
        """
        key, delta = self.styles.resolve(prompt)
        return self._request(key, delta, lambda: (self.styles.clip_loss(key), self.adaptation.lr))

    def set_style_images(
        self,
        images: Sequence[np.ndarray],
        name: str,
        cropper: FaceCropper | None = None,
        reuse_cached: bool = True,
    ) -> Future[str]:
        """Switch to the look of ``images`` (style pictures, each HxWx3 uint8 RGB); returns at
        once, like :meth:`set_style`.

        The style is cached under ``name`` (normalised), so the prompt ``name`` selects it
        later; a name that selects a built-in style is refused (ValueError). Unless cached (or
        ``reuse_cached`` is False), it is adapted in the background with the exemplar losses;
        ``cropper`` cuts each picture around its face first (see
        :func:`models.style_images.exemplar_tensor`).
        """
        key = custom_style_key(name)
        if key == NO_STYLE or len(key) > MAX_PROMPT_CHARS:
            raise ValueError(f"style name {name!r} must be 1 to {MAX_PROMPT_CHARS} characters")
        if not images:
            raise ValueError("no style pictures given")
        delta = self.styles.cache.get(key) if reuse_cached else None
        pictures = list(images)
        return self._request(
            key,
            delta,
            lambda: (self.styles.exemplar_loss(pictures, cropper), self.adaptation.image_lr),
        )

    def _request(
        self, key: str, delta: StyleDelta | None, loss: Callable[[], tuple[LossBuilder, float]]
    ) -> Future[str]:
        """Activate ``delta`` (or no style) soon, or adapt ``key`` with the loss and learning
        rate ``loss()`` gives (called on the adaptation thread)."""
        future: Future[str] = Future()
        with self._style_lock:
            self._generation += 1
            generation = self._generation
            if self._pending is not None:
                self._pending.cancel()
            self._pending = future
        if delta is not None or key == NO_STYLE:
            self._swapper.submit(self._activate, generation, key, delta, future)
        else:
            self._adapter.submit(self._adapt_then_activate, generation, key, loss, future)
        return future

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop this renderer's background threads; a running adaptation stops at its next
        step. The shared networks stay loaded for the other renderers."""
        with self._style_lock:
            self._generation += 1  # makes any running adaptation stop
            if self._pending is not None:
                self._pending.cancel()
        self._swapper.shutdown(wait=True, cancel_futures=True)
        self._adapter.shutdown(wait=True, cancel_futures=True)

    def _activate(
        self, generation: int, key: str, delta: StyleDelta | None, future: Future[str]
    ) -> None:
        """Switch to ``delta`` between two frames, unless a newer request came in meanwhile."""
        try:
            generator, decode = self.wrapper.styled(delta)  # built outside the lock
        except ValueError as error:  # a delta that does not fit these networks
            with self._style_lock:
                if not future.cancelled():
                    future.set_exception(error)
            return
        # The reference through the new style's encoder (a reference style's U-Net: tens of
        # ms) is computed outside the lock too, so frames go on rendering meanwhile.
        with self._lock:
            source = self._source
            known = _features_key(delta) in self._features_by_style
        encoded = None
        if source is not None and not known:
            with torch.inference_mode():
                encoded = generator.encode_source(source)
        with self._lock, self._style_lock:
            if generation != self._generation or future.cancelled():
                return
            self._delta, self._generator, self._decode = delta, generator, decode
            if self._source is not None:
                fresh = encoded if self._source is source else None  # unless it changed meanwhile
                self._source_features = self._encoded_source(fresh)
            self.style_key = key
            self._pending = None
            future.set_result(key)

    def _encoded_source(self, encoded: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The reference through the encoder with the active style (call under the lock);
        ``encoded``: that, computed already."""
        assert self._source is not None
        key = _features_key(self._delta)
        if key not in self._features_by_style:
            if encoded is None:
                with torch.inference_mode():
                    encoded = self._generator.encode_source(self._source)
            self._features_by_style[key] = encoded
            while len(self._features_by_style) > ENCODED_STYLES_KEPT:
                self._features_by_style.popitem(last=False)
        self._features_by_style.move_to_end(key)
        return self._features_by_style[key]

    def _adapt_then_activate(
        self,
        generation: int,
        key: str,
        loss: Callable[[], tuple[LossBuilder, float]],
        future: Future[str],
    ) -> None:
        with self._lock:
            # clone() outside inference mode: autograd cannot use the renderer's inference tensors
            source = None if self._source is None else self._source.float().contiguous().clone()
        try:
            delta = self.styles.adapt(key, source, lambda: generation != self._generation, *loss())
        except AdaptationCancelled:
            log.info("adaptation of %r stopped: a newer style was asked for", key)
            return
        except Exception as error:  # any failure must reach the caller through the future
            log.warning("adapting style %r failed: %s", key, error)
            with self._style_lock:
                if not future.cancelled():
                    future.set_exception(error)
            return
        self._activate(generation, key, delta, future)

    def _driving_buffers(self) -> dict[str, torch.Tensor]:
        """Preallocated 1xKx2 / 1xKx2x2 tensors the per-frame features are copied into."""
        num_kp = self.config.num_kp
        buffers = {"value": torch.zeros(1, num_kp, 2, device=self.device, dtype=self.dtype)}
        if self.config.estimate_jacobian:
            eye = torch.eye(2, device=self.device, dtype=self.dtype)
            buffers["jacobian"] = eye.repeat(1, num_kp, 1, 1)
        return buffers


def _features_key(delta: StyleDelta | None) -> StyleDelta | None:
    """Key of the encoded reference ``delta`` renders from: the delta when it changes the
    layers that encode the reference (not just the decoder), else None (the unstyled one)."""
    if delta is None:
        return None
    encoder = ("restyle.", "first.", "down_blocks.")
    return delta if any(name.startswith(encoder) for name in delta.deltas) else None
