"""Which style a prompt selects, the cache of adapted styles, and adapting new ones.

One :class:`StyleManager` serves every renderer built on one :class:`InferenceWrapper` (all
participants on a server): the built-in styles of the checkpoint, one cache of adapted styles
(in memory, and on disk with a directory), and CLIP, loaded once on first use. Adaptation runs
on float32 copies of the unstyled networks, so it never touches the weights others render with.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.face_crop import FaceCropper
from models.generator import OcclusionAwareGenerator
from models.inference import InferenceWrapper
from models.layer_selection import (
    AdaptationConfig,
    LossFn,
    adapt_style,
    clip_style_loss,
    exemplar_style_loss,
    select_layers,
)
from models.style_delta import StyleCache, StyleDelta
from models.style_images import exemplar_tensor
from models.style_names import MAX_PROMPT_CHARS, match_style, normalize_prompt
from models.text_encoder import DEFAULT_CLIP_MODEL, ClipGuide, load_clip

__all__ = ["NO_STYLE", "LossBuilder", "StyleManager"]

log = logging.getLogger(__name__)

LossBuilder = Callable[
    [OcclusionAwareGenerator, nn.Module, torch.Tensor, dict[str, torch.Tensor]], LossFn
]
"""(float32 generator copy, structure detector copy, 1x3xSxS reference, its keypoints) -> loss.

The structure detector (:attr:`models.checkpoint.LoadedModels.structure`) measures whether the
style keeps the face's structure; the reference's keypoints come from the codec's detector."""

NO_STYLE = "none"


class StyleManager:
    """Built-in styles, the style cache and adaptation for the networks of ``wrapper``.

    New prompts need CLIP: ``clip`` (a loaded :class:`ClipGuide`) or ``clip_weights`` (file or
    open_clip tag, loaded on first use). ``style_cache_dir`` keeps adapted styles across runs;
    ``style_cache`` passes a cache to share (its namespace is then the caller's business).
    """

    def __init__(
        self,
        wrapper: InferenceWrapper,
        *,
        clip: ClipGuide | None = None,
        clip_weights: str | os.PathLike[str] | None = None,
        clip_model: str = DEFAULT_CLIP_MODEL,
        style_cache_dir: str | os.PathLike[str] | None = None,
        style_cache: StyleCache | None = None,
        adaptation: AdaptationConfig | None = None,
    ) -> None:
        self.wrapper = wrapper
        self.builtin = wrapper.builtin_styles
        self.adaptation = adaptation or AdaptationConfig()
        self._clip = clip
        self._clip_weights = clip_weights
        self._clip_model = clip_model
        self._clip_lock = threading.Lock()
        namespace = wrapper.fingerprint if style_cache_dir is not None else ""
        self.cache = style_cache or StyleCache(
            Path(style_cache_dir) if style_cache_dir is not None else None, namespace
        )

    def names(self) -> list[str]:
        """Built-in styles of the checkpoint, usable without CLIP."""
        return sorted(self.builtin)

    def lookup(self, prompt: str) -> tuple[str, StyleDelta | None]:
        """(style key, built-in or cached delta or None) for a non-empty prompt."""
        builtin = match_style(prompt, available=self.names())
        if builtin is not None:
            return builtin, self.builtin[builtin]
        key = normalize_prompt(prompt)
        return key, self.cache.get(key)

    def resolve(self, prompt: str | None) -> tuple[str, StyleDelta | None]:
        """(style key, delta if known now); ValueError for prompts that cannot be served."""
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError(f"a style prompt must be a string, got {type(prompt).__name__}")
        if prompt is None or normalize_prompt(prompt) in ("", NO_STYLE):
            return NO_STYLE, None
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"style prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}"
            )
        key, delta = self.lookup(prompt)
        if delta is None and self._clip is None and self._clip_weights is None:
            available = ", ".join(self.names()) or "none in this checkpoint"
            raise ValueError(
                f"no built-in style matches {prompt!r} and no CLIP weights are configured "
                f"(--clip-weights) to adapt a new one; built-in styles: {available}"
            )
        return key, delta

    def adapt(
        self,
        key: str,
        source: torch.Tensor | None,
        should_stop: Callable[[], bool],
        loss: LossBuilder,
        lr: float,
    ) -> StyleDelta:
        """Layer selection and adaptation toward ``loss`` of float32 copies of the unstyled
        networks, on ``source`` (1x3xSxS float32, a grey frame when None); cached as ``key``."""
        generator, kp_detector, structure = self.wrapper.float_copies()
        if source is None:
            log.info("no reference frame yet: adapting %r on a grey frame", key)
            size = self.wrapper.size
            source = torch.full((1, 3, size, size), 0.5, device=self.wrapper.device)
        with torch.no_grad():
            kp_source = kp_detector(source)
        config = self.adaptation
        loss_fn = loss(generator, structure, source, kp_source)
        layers = select_layers(
            generator, loss_fn, config.top_k, config.probe_steps, should_stop=should_stop
        )
        log.info("style %r: adapting layers %s", key, layers)
        delta = adapt_style(
            generator, loss_fn, layers, config.steps, lr, key, config.progress, should_stop
        )
        self.cache.put(key, delta)
        return delta

    def clip_loss(self, prompt: str) -> LossBuilder:
        """The CLIP directional loss toward ``prompt`` (loads CLIP on first use)."""
        clip = self._load_clip()
        neutral = self.adaptation.neutral_prompt
        return lambda generator, _detector, source, kp_source: clip_style_loss(
            generator, clip, prompt, source, kp_source, neutral
        )

    def exemplar_loss(
        self, images: Sequence[np.ndarray], cropper: FaceCropper | None
    ) -> LossBuilder:
        """The exemplar losses toward ``images`` (cropped here, on the calling thread), with
        the CLIP image prompt when CLIP is configured."""
        exemplars = exemplar_tensor(list(images), self.wrapper.size, cropper)
        exemplars = exemplars.to(self.wrapper.device)
        with_clip = self._clip is not None or self._clip_weights is not None
        clip = self._load_clip() if with_clip else None
        return lambda generator, detector, source, kp_source: exemplar_style_loss(
            generator, detector, exemplars, source, kp_source, clip=clip
        )

    def _load_clip(self) -> ClipGuide:
        with self._clip_lock:  # two participants asking at once load it once
            if self._clip is None:
                assert self._clip_weights is not None  # resolve refuses new prompts without
                self._clip = load_clip(self._clip_weights, self._clip_model, self.wrapper.device)
            return self._clip
