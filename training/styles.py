"""Built-in classical stylisations: the image targets of stage-2 domain adaptation.

Each style turns an RGB uint8 frame into a stylised RGB uint8 frame with OpenCV only, so
prompts such as "pencil sketch" work without CLIP weights. Names, descriptions and prompt
keywords live in :mod:`models.style_names` (shared with the receiver); this module adds the
image operations. All operations are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from models.style_names import BUILTIN_STYLE_NAMES, StyleName, match_style

__all__ = ["BUILTIN_STYLES", "match_style", "stylize"]


def _sketch(image: np.ndarray) -> np.ndarray:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    gray, _ = cv2.pencilSketch(bgr, sigma_s=40, sigma_r=0.08, shade_factor=0.06)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


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
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 90) % 180  # complementary hues
    poster = _quantize(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), levels=3)
    return cv2.bitwise_and(poster, poster, mask=_edge_mask(image, block=9, offset=8))


_OPERATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sketch": _sketch,
    "cel": _cel,
    "comic": _comic,
    "watercolor": _watercolor,
    "pop-art": _pop_art,
}

BUILTIN_STYLES: dict[str, StyleName] = {style.name: style for style in BUILTIN_STYLE_NAMES}


def stylize(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` (HxWx3 uint8 RGB) rendered in built-in style ``name``; same shape and dtype."""
    if name not in _OPERATIONS:
        raise ValueError(f"unknown built-in style {name!r}; available: {', '.join(_OPERATIONS)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
    return np.ascontiguousarray(_OPERATIONS[name](np.ascontiguousarray(image)))
