"""Built-in styles' targets for stage-2 domain adaptation: classical recipes and exemplar sets.

A classical style (:data:`CLASSICAL_STYLES`) turns an RGB uint8 frame into a stylised RGB uint8
frame with OpenCV only (deterministic), so prompts such as "pencil sketch" work without CLIP
weights. An exemplar style (:data:`EXEMPLAR_STYLES`) is learned from a few style pictures in a
styles folder given at training time (``--style-data``), chosen by looking at them: the
stylised portraits of ``../shared/data/styles`` in this project. Names, descriptions and prompt
keywords live in :mod:`models.style_names` (shared with the receiver).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from models.face_crop import FaceCropper
from models.style_images import exemplar_tensor, read_style_image
from models.style_names import BUILTIN_STYLE_NAMES, StyleName, match_style

__all__ = [
    "BUILTIN_STYLES",
    "CLASSICAL_STYLES",
    "EXEMPLAR_STYLES",
    "load_exemplars",
    "match_style",
    "stylize",
]

log = logging.getLogger(__name__)


def _sketch(image: np.ndarray) -> np.ndarray:
    """Graphite pencil: grey, dark strokes where the luminance changes (a colour dodge of the
    grey image by its blurred negative) over a soft grey tone of the light and shade.

    Line-only recipes (``cv2.pencilSketch``) are white paper almost everywhere: the generator,
    which paints its residual at half size over the sharp reference, could not follow them and
    washed the face out (and moved the keypoints 4 px); this target keeps the face's shading.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    negative = cv2.GaussianBlur(1 - grey, (0, 0), 3)
    strokes = np.clip(grey / (1 - negative).clip(1e-3), 0, 1)
    tone = cv2.GaussianBlur(grey, (0, 0), 2)
    out = (strokes * (0.45 + 0.55 * tone) * 255).round().astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def _edge_mask(image: np.ndarray, block: int, offset: int) -> np.ndarray:
    """HxW uint8: 0 on dark outline pixels, 255 elsewhere."""
    gray = cv2.medianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 5)
    return cv2.adaptiveThreshold(
        gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, offset
    )


def _quantize(image: np.ndarray, levels: int) -> np.ndarray:
    """Uniform colour quantisation per channel to ``levels`` values (no random k-means)."""
    step = 256 // levels
    return (image // step * step + step // 2).astype(np.uint8)


def _cel(image: np.ndarray) -> np.ndarray:
    smooth = cv2.edgePreservingFilter(image, flags=cv2.RECURS_FILTER, sigma_s=60, sigma_r=0.4)
    flat = _quantize(cv2.bilateralFilter(smooth, 7, 50, 50), levels=8)
    edges = _edge_mask(image, block=9, offset=7)
    return cv2.bitwise_and(flat, flat, mask=edges)


def _comic(image: np.ndarray) -> np.ndarray:
    smooth = cv2.bilateralFilter(image, 9, 75, 75)
    hsv = cv2.cvtColor(smooth, cv2.COLOR_RGB2HSV)
    hsv[..., 1] = cv2.convertScaleAbs(hsv[..., 1], alpha=1.4)  # punchier colour
    hsv[..., 2] = _quantize(hsv[..., 2], levels=3)  # hard light/shadow bands
    shaded = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    edges = _edge_mask(image, block=9, offset=5)
    inked = cv2.erode(edges, np.ones((2, 2), np.uint8))  # thicker ink lines
    return cv2.bitwise_and(shaded, shaded, mask=inked)


def _watercolor(image: np.ndarray) -> np.ndarray:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    painted = cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)
    # Washed-out pigment on paper: lift towards white.
    light = cv2.addWeighted(painted, 0.8, np.full_like(painted, 255), 0.2, 0)
    return cv2.cvtColor(light, cv2.COLOR_BGR2RGB)


def _pop_art(image: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(cv2.bilateralFilter(image, 7, 60, 60), cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.int16) * 2 + 60, 0, 255).astype(np.uint8)
    poster = _quantize(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), levels=3)
    return cv2.bitwise_and(poster, poster, mask=_edge_mask(image, block=9, offset=8))


def _zombie(image: np.ndarray) -> np.ndarray:
    """Pale, green-grey rotting skin: desaturated, tinted, contrasty, with dark sockets
    (local shadows deepened), blotches (a fixed noise pattern) and darkened outlines."""
    smooth = cv2.bilateralFilter(image, 7, 40, 40).astype(np.float32) / 255
    grey = smooth @ np.array([0.299, 0.587, 0.114], np.float32)
    shadow = np.clip(1.0 - grey / cv2.GaussianBlur(grey, (0, 0), 6).clip(1e-3), 0, 1)
    luma = np.clip((grey - 0.5) * 1.4 + 0.5 - 0.9 * shadow, 0, 1)
    height, width = grey.shape
    blotches = cv2.resize(
        np.random.default_rng(7).random((max(2, height // 16), max(2, width // 16))),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    ).astype(np.float32)
    luma = luma * (0.8 + 0.25 * blotches)
    tint = np.array([0.72, 0.86, 0.62], np.float32)  # sickly green-grey skin
    rgb = 0.85 * luma[..., None] * tint + 0.15 * smooth * luma[..., None]
    out = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return cv2.bitwise_and(out, out, mask=_edge_mask(image, block=9, offset=6))


_OPERATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sketch": _sketch,
    "zombie": _zombie,
    "cel": _cel,
    "comic": _comic,
    "watercolor": _watercolor,
    "pop-art": _pop_art,
}

# File names in the styles folder (``--style-data``), picked by looking at the pictures.
EXEMPLAR_STYLES: dict[str, tuple[str, ...]] = {
    # Big-eyed, smooth-skinned, warm-coloured cartoon girls and a 2D Disney hero.
    "disney-princess": (
        "anitalker__cartoon_girl.png",
        "fomm__doll-01.png",
        "joyvasa__joyvasa_004.png",
        "fomm__cartoon-04.jpg",
    ),
    # 3D animation: two 3D cartoon boys, Woody, Buzz and a 3D caricature.
    "pixar": (
        "echomimic__a.png",
        "liveportrait__s7.jpg",
        "fomm__doll-08.png",
        "fomm__doll-05.png",
        "liveportrait__k1.png",
    ),
    # Painted anime faces: clean lines, big eyes, soft painted shading.
    "anime-painting": (
        "anitalker__aiface7.png",
        "anitalker__aiface8.png",
        "musetalk__yongen.jpeg",
        "sadtalker__full3.png",
        "sadtalker__art_7.png",
        "sadtalker__art_18.png",
    ),
}

CLASSICAL_STYLES: tuple[str, ...] = tuple(_OPERATIONS)

BUILTIN_STYLES: dict[str, StyleName] = {style.name: style for style in BUILTIN_STYLE_NAMES}


def stylize(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` (HxWx3 uint8 RGB) rendered in built-in style ``name``; same shape and dtype."""
    if name in EXEMPLAR_STYLES:
        raise ValueError(f"style {name!r} has no classical recipe: it is learned from pictures")
    if name not in _OPERATIONS:
        raise ValueError(f"unknown built-in style {name!r}; available: {', '.join(_OPERATIONS)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
    return np.ascontiguousarray(_OPERATIONS[name](np.ascontiguousarray(image)))


def load_exemplars(
    name: str, directory: Path | None, size: int, cropper: FaceCropper | None = None
) -> torch.Tensor:
    """Exemplar style ``name``'s pictures from ``directory`` as Nx3x``size``x``size`` in [0, 1]
    (face crops with ``cropper``); ValueError naming what is missing."""
    if name not in EXEMPLAR_STYLES:
        raise ValueError(
            f"{name!r} is not an exemplar style; those are {', '.join(EXEMPLAR_STYLES)}"
        )
    if directory is None:
        raise ValueError(
            f"style {name!r} is learned from pictures: give their folder (--style-data)"
        )
    paths = [directory / file for file in EXEMPLAR_STYLES[name]]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise ValueError(f"style {name!r}: {directory} lacks {', '.join(missing)}")
    images = [read_style_image(path) for path in paths]
    return exemplar_tensor(images, size, cropper, names=[str(path) for path in paths])
