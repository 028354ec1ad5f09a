"""CLIP (open_clip) text and image embeddings that guide style adaptation.

Weights come from a local file (``.pt``/``.safetensors``/``.bin``) or an open_clip pretrained
tag such as ``openai``; a tag downloads on first use, so it only works on a machine with
internet. Tests and benchmarks use :func:`tiny_clip`, a small randomly initialised CLIP with the
real tokenizer. Text embeddings are cached per prompt: the text tower runs when the prompt
changes, never per frame.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError

from models.errors import short_reason
from models.frames import resolve_device
from models.torchvision_compat import import_open_clip

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "TINY_CLIP_MODEL",
    "ClipGuide",
    "load_clip",
    "random_clip",
    "register_tiny_clip_config",
    "tiny_clip",
]

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "ViT-B-32"
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
TINY_CLIP_MODEL = "cartooncodec-tiny-clip"
_TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"layers": 1, "width": 32, "head_width": 16, "patch_size": 8, "image_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class ClipGuide:
    """A CLIP model with its tokenizer: encode_text (cached) and encode_image (differentiable)."""

    def __init__(self, model: Any, tokenizer: Any, device: torch.device) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = device
        open_clip = import_open_clip()
        size = getattr(model.visual, "image_size", 224)
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self._mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(open_clip.OPENAI_DATASET_STD, device=device).view(1, 3, 1, 1)
        self._text_cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def encode_text(self, prompt: str) -> torch.Tensor:
        """Unit-norm text embedding (D,), computed once per distinct prompt."""
        if prompt not in self._text_cache:
            tokens = self.tokenizer([prompt]).to(self.device)
            self._text_cache[prompt] = F.normalize(self.model.encode_text(tokens).float(), dim=-1)[
                0
            ]
        return self._text_cache[prompt]

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images: Bx3xHxW in [0, 1] -> BxD unit-norm embeddings (gradients flow to images)."""
        resized = F.interpolate(
            images.float(),
            size=self.image_size,
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        features = self.model.encode_image((resized - self._mean) / self._std)
        return F.normalize(features.float(), dim=-1)


def load_clip(
    weights: str | os.PathLike[str],
    model_name: str = DEFAULT_CLIP_MODEL,
    device: str | torch.device | None = None,
) -> ClipGuide:
    """CLIP ``model_name`` with ``weights``: a local file or an open_clip pretrained tag.

    ValueError naming the file or tag when it cannot be used.
    """
    open_clip = import_open_clip()
    target = resolve_device(device)
    source = str(weights)
    if model_name == TINY_CLIP_MODEL:
        register_tiny_clip_config()
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown CLIP model {model_name!r}; e.g. {DEFAULT_CLIP_MODEL!r}")
    is_file = Path(source).suffix in _WEIGHT_SUFFIXES or Path(source).exists()
    if is_file and not Path(source).is_file():
        raise ValueError(f"CLIP weights file {source} does not exist")
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if not is_file and source not in tags:
        raise ValueError(
            f"{source!r} is neither a CLIP weights file nor a pretrained tag of {model_name} "
            f"(tags: {', '.join(tags)})"
        )
    if not is_file:
        log.info("loading CLIP %s/%s (downloads on first use)", model_name, source)
    try:
        model = open_clip.create_model(model_name, pretrained=source, device=target)
    except (
        OSError,
        RuntimeError,
        KeyError,
        ValueError,
        pickle.UnpicklingError,
        SafetensorError,
    ) as error:
        what = "weights file" if is_file else "pretrained tag"
        raise ValueError(
            f"cannot load CLIP {model_name} {what} {source}: {short_reason(error)}"
        ) from error
    return ClipGuide(model, open_clip.get_tokenizer(model_name), target)


def tiny_clip(seed: int = 0, device: str | torch.device | None = None) -> ClipGuide:
    """A small randomly initialised CLIP (32x32 images) with the real tokenizer, for tests."""
    return random_clip(TINY_CLIP_MODEL, seed, device)


def random_clip(
    model_name: str = TINY_CLIP_MODEL, seed: int = 0, device: str | torch.device | None = None
) -> ClipGuide:
    """CLIP ``model_name`` with random weights: guides nothing, but costs what the real one
    costs (timings) or exercises the code (tests, with the tiny model)."""
    open_clip = import_open_clip()
    if model_name == TINY_CLIP_MODEL:
        register_tiny_clip_config()
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown CLIP model {model_name!r}; e.g. {DEFAULT_CLIP_MODEL!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(model_name, pretrained=None)
    return ClipGuide(model, open_clip.get_tokenizer(model_name), resolve_device(device))


def register_tiny_clip_config() -> None:
    """Make :data:`TINY_CLIP_MODEL` an open_clip model name (its config is written once)."""
    open_clip = import_open_clip()
    if TINY_CLIP_MODEL in open_clip.list_models():
        return
    path = Path(tempfile.gettempdir()) / "cartooncodec-clip" / f"{TINY_CLIP_MODEL}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
