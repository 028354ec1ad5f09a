"""Receiver side: reference frame + motion features (+ style prompt) -> stylised frame.

The reference is encoded once (:meth:`Renderer.set_reference`); each frame then runs only the
dense motion network and the generator's warp-bottleneck-decoder. Styles switch by applying a
cached :class:`StyleDelta` between two frames. A prompt that is neither a built-in style nor
cached is adapted with CLIP on a background thread while the previous style keeps rendering;
style pictures (an "image prompt", :meth:`Renderer.set_style_images`) are adapted the same way
with the exemplar losses, which need no pretrained network.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.checkpoint import LoadedModels, load_models
from models.extractor import MotionExtractor
from models.face_crop import FaceCropper
from models.frames import frame_to_tensor, resolve_device, tensor_to_frame
from models.generator import OcclusionAwareGenerator
from models.layer_selection import (
    AdaptationCancelled,
    AdaptationConfig,
    LossFn,
    adapt_style,
    clip_style_loss,
    exemplar_style_loss,
    select_layers,
)
from models.motion_features import unpack_motion
from models.style_delta import StyleCache, StyleDelta, StyleSwitch, weights_fingerprint
from models.style_images import exemplar_tensor
from models.style_names import MAX_PROMPT_CHARS, custom_style_key, match_style, normalize_prompt
from models.text_encoder import DEFAULT_CLIP_MODEL, ClipGuide, load_clip

__all__ = ["MAX_PROMPT_CHARS", "NO_STYLE", "Renderer"]

log = logging.getLogger(__name__)

LossBuilder = Callable[
    [OcclusionAwareGenerator, nn.Module, torch.Tensor, dict[str, torch.Tensor]], LossFn
]
"""(float32 generator copy, keypoint detector copy, 1x3xSxS reference, its keypoints) -> loss."""

NO_STYLE = "none"


class Renderer:
    """Renders one participant: ``set_reference`` once, ``render`` per frame.

    ``checkpoint`` None uses the shipped checkpoint of ``preset`` when present, else random
    weights (with a warning). New prompts need CLIP: pass ``clip`` (a loaded
    :class:`ClipGuide`) or ``clip_weights`` (file or open_clip tag, loaded on first use).
    ``style_cache_dir`` keeps adapted styles across runs; ``style_cache`` shares one cache
    between renderers of the same weights (e.g. all participants on a server). On CUDA, ``half`` and
    ``channels_last`` default to on and ``compile`` uses torch.compile.
    """

    def __init__(
        self,
        preset: str = "lite-128",
        checkpoint: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        *,
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
        self.device = resolve_device(device)
        self.models = models or load_models(preset, checkpoint, self.device)
        self.config = self.models.config
        self.extractor = MotionExtractor(device=self.device, models=self.models)
        self.generator = self.models.generator.eval()
        on_cuda = self.device.type == "cuda"
        self.dtype = torch.float16 if (on_cuda if half is None else half) else torch.float32
        # The cache's key of these weights, taken now: in float32 and unstyled, so that a style
        # cached by a CPU float32 process (`cartooncodec style add`) fits a float16 server.
        self._namespace = (
            weights_fingerprint(self.generator)
            if style_cache_dir is not None and style_cache is None
            else ""
        )
        self._optimise_for_device(on_cuda if channels_last is None else channels_last, compile)
        self._builtin = dict(self.models.styles)
        self._switch = StyleSwitch(self.generator)
        self._clip = clip
        self._clip_weights = clip_weights
        self._clip_model = clip_model
        self._cache_dir = Path(style_cache_dir) if style_cache_dir is not None else None
        self._cache = style_cache
        self.adaptation = adaptation or AdaptationConfig()
        self._render_lock = threading.Lock()  # held while the networks run or weights change
        self._style_lock = threading.Lock()  # held briefly for style bookkeeping only
        self._generation = 0
        self._pending: Future[str] | None = None
        self.style_key = NO_STYLE
        self._swapper = ThreadPoolExecutor(1, thread_name_prefix="style-swap")
        self._adapter = ThreadPoolExecutor(1, thread_name_prefix="style-adapt")
        self._source: torch.Tensor | None = None
        self._source_small: torch.Tensor | None = None
        self._source_features: list[torch.Tensor] | None = None
        # Encoded reference per style delta, so switching back to a style skips the encoder.
        self._features_by_style: dict[StyleDelta | None, list[torch.Tensor]] = {}
        self._kp_source: dict[str, torch.Tensor] = {}
        self._kp_driving = self._driving_buffers()

    @property
    def size(self) -> int:
        """Side of the square frames rendered (and of the reference, resized if needed)."""
        return self.config.image_size

    def style_names(self) -> list[str]:
        """Built-in styles of the checkpoint, usable without CLIP."""
        return sorted(self._builtin)

    def known_style(self, prompt: str) -> StyleDelta | None:
        """The delta ``prompt`` selects without adaptation (built-in or cached), else None."""
        return self._lookup(prompt)[1]

    def set_reference(self, image: np.ndarray) -> None:
        """Use ``image`` (HxWx3 uint8 RGB, resized to ``size``) as the frame to animate."""
        source = frame_to_tensor(image, self.size, self.device, self.dtype)
        if self._channels_last:
            source = source.contiguous(memory_format=torch.channels_last)
        with self._render_lock, torch.inference_mode():
            self._kp_source = self.extractor.kp_detector(source)
            self._source = source
            self._source_small = self.generator.dense_motion_network.downscale(source)
            self._features_by_style.clear()
            self._source_features = self._encoded_source()

    def render(self, features: np.ndarray) -> np.ndarray:
        """Motion features ((feature_size,) float32) -> size x size x 3 uint8 RGB frame.

        ValueError (with the reason) for NaN/inf, out-of-range or wrongly shaped features;
        RuntimeError before a reference is set.
        """
        kp, jacobian = unpack_motion(features, self.config.num_kp, self.config.estimate_jacobian)
        with self._render_lock, torch.inference_mode():
            if self._source_features is None or self._source_small is None:
                raise RuntimeError("no reference frame: call set_reference(image) before render")
            self._kp_driving["value"][0].copy_(torch.from_numpy(kp))
            if jacobian is not None:
                self._kp_driving["jacobian"][0].copy_(torch.from_numpy(jacobian))
            motion = self.generator.dense_motion_network.predict(
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
        key, delta = self._resolve(prompt)
        return self._request(key, delta, lambda: (self._clip_loss(key), self.adaptation.lr))

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
        delta = self._style_cache().get(key) if reuse_cached else None
        pictures = list(images)
        return self._request(
            key,
            delta,
            lambda: (self._exemplar_loss(pictures, cropper), self.adaptation.image_lr),
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
        """Stop the background threads; a running adaptation stops at its next step."""
        with self._style_lock:
            self._generation += 1  # makes any running adaptation stop
            if self._pending is not None:
                self._pending.cancel()
        self._swapper.shutdown(wait=True, cancel_futures=True)
        self._adapter.shutdown(wait=True, cancel_futures=True)

    def _resolve(self, prompt: str | None) -> tuple[str, StyleDelta | None]:
        """(style key, delta if known now); ValueError for prompts that cannot be served."""
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError(f"a style prompt must be a string, got {type(prompt).__name__}")
        if prompt is None or normalize_prompt(prompt) in ("", NO_STYLE):
            return NO_STYLE, None
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"style prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}"
            )
        key, delta = self._lookup(prompt)
        if delta is None and self._clip is None and self._clip_weights is None:
            available = ", ".join(self.style_names()) or "none in this checkpoint"
            raise ValueError(
                f"no built-in style matches {prompt!r} and no CLIP weights are configured "
                f"(--clip-weights) to adapt a new one; built-in styles: {available}"
            )
        return key, delta

    def _lookup(self, prompt: str) -> tuple[str, StyleDelta | None]:
        """(style key, built-in or cached delta or None) for a non-empty prompt."""
        builtin = match_style(prompt, available=self.style_names())
        if builtin is not None:
            return builtin, self._builtin[builtin]
        key = normalize_prompt(prompt)
        return key, self._style_cache().get(key)

    def _style_cache(self) -> StyleCache:
        if self._cache is None:
            self._cache = StyleCache(self._cache_dir, self._namespace)
        return self._cache

    def _activate(
        self, generation: int, key: str, delta: StyleDelta | None, future: Future[str]
    ) -> None:
        """Apply ``delta`` between two frames, unless a newer request came in meanwhile."""
        with self._render_lock, self._style_lock:
            if generation != self._generation or future.cancelled():
                return
            self._switch.apply(delta)
            if self._source is not None:
                self._source_features = self._encoded_source()
            self.style_key = key
            self._pending = None
            future.set_result(key)

    def _encoded_source(self) -> list[torch.Tensor]:
        """The reference through the encoder with the active style (call under the lock)."""
        assert self._source is not None
        active = self._switch.active
        key = active if active is not None and _touches_encoder(active) else None
        if key not in self._features_by_style:
            with torch.inference_mode():
                self._features_by_style[key] = self.generator.encode_source(self._source)
        return self._features_by_style[key]

    def _adapt_then_activate(
        self,
        generation: int,
        key: str,
        loss: Callable[[], tuple[LossBuilder, float]],
        future: Future[str],
    ) -> None:
        try:
            delta = self._adapt(key, lambda: generation != self._generation, *loss())
        except AdaptationCancelled:
            log.info("adaptation of %r stopped: a newer style was asked for", key)
            return
        except Exception as error:  # any failure must reach the caller through the future
            log.warning("adapting style %r failed: %s", key, error)
            with self._style_lock:
                if not future.cancelled():
                    future.set_exception(error)
            return
        self._style_cache().put(key, delta)
        self._activate(generation, key, delta, future)

    def _adapt(
        self, prompt: str, should_stop: Callable[[], bool], loss: LossBuilder, lr: float
    ) -> StyleDelta:
        """Layer selection and adaptation of a float32 copy of the unstyled generator."""
        with self._render_lock:
            active = self._switch.active
            self._switch.apply(None)
            generator = copy.deepcopy(self.generator).float()
            self._switch.apply(active)
            # clone() outside inference mode: autograd cannot use the renderer's inference tensors
            source = None if self._source is None else self._source.float().contiguous().clone()
        if source is None:
            log.info("no reference frame yet: adapting %r on a grey frame", prompt)
            source = torch.full((1, 3, self.size, self.size), 0.5, device=self.device)
        kp_detector = copy.deepcopy(self.extractor.kp_detector).float()
        with torch.no_grad():
            kp_source = kp_detector(source)
        config = self.adaptation
        loss_fn = loss(generator, kp_detector, source, kp_source)
        layers = select_layers(
            generator, loss_fn, config.top_k, config.probe_steps, should_stop=should_stop
        )
        log.info("style %r: adapting layers %s", prompt, layers)
        return adapt_style(
            generator, loss_fn, layers, config.steps, lr, prompt, config.progress, should_stop
        )

    def _clip_loss(self, prompt: str) -> LossBuilder:
        """The CLIP directional loss toward ``prompt`` (loads CLIP on first use)."""
        clip = self._load_clip()
        neutral = self.adaptation.neutral_prompt
        return lambda generator, _detector, source, kp_source: clip_style_loss(
            generator, clip, prompt, source, kp_source, neutral
        )

    def _exemplar_loss(self, images: list[np.ndarray], cropper: FaceCropper | None) -> LossBuilder:
        """The exemplar losses toward ``images`` (cropped here, on the adaptation thread), with
        the CLIP image prompt when CLIP is configured."""
        exemplars = exemplar_tensor(images, self.size, cropper).to(self.device)
        with_clip = self._clip is not None or self._clip_weights is not None
        clip = self._load_clip() if with_clip else None
        return lambda generator, detector, source, kp_source: exemplar_style_loss(
            generator, detector, exemplars, source, kp_source, clip=clip
        )

    def _load_clip(self) -> ClipGuide:
        if self._clip is None:
            assert self._clip_weights is not None  # callers check that one of them is set
            self._clip = load_clip(self._clip_weights, self._clip_model, self.device)
        return self._clip

    def _driving_buffers(self) -> dict[str, torch.Tensor]:
        """Preallocated 1xKx2 / 1xKx2x2 tensors the per-frame features are copied into."""
        num_kp = self.config.num_kp
        buffers = {"value": torch.zeros(1, num_kp, 2, device=self.device, dtype=self.dtype)}
        if self.config.estimate_jacobian:
            eye = torch.eye(2, device=self.device, dtype=self.dtype)
            buffers["jacobian"] = eye.repeat(1, num_kp, 1, 1)
        return buffers

    def _optimise_for_device(self, channels_last: bool, compile: bool) -> None:
        self._channels_last = channels_last
        self._decode: Callable[[list[torch.Tensor], dict[str, torch.Tensor]], torch.Tensor] = (
            self.generator.decode
        )
        self.extractor.kp_detector.to(self.device, self.dtype)
        self.generator.to(self.device, self.dtype)
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.extractor.kp_detector.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if compile:
            # The decoder only: compiling the dense motion network too was slower on CPU
            # (30 ms vs 22 ms a lite-128 frame; eager 30 ms), its grid sampling compiles poorly.
            self._decode = torch.compile(self._decode, dynamic=False)


def _touches_encoder(delta: StyleDelta) -> bool:
    """Whether ``delta`` changes the layers that encode the reference (not just the decoder)."""
    return any(name.startswith(("first.", "down_blocks.")) for name in delta.deltas)
