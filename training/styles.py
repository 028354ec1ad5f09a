"""Built-in styles' targets for stage-2 domain adaptation: classical recipes and exemplar sets.

A classical style (:data:`CLASSICAL_STYLES`) turns an RGB uint8 frame into a stylised RGB uint8
frame with OpenCV only (deterministic), so prompts such as "pencil sketch" work without CLIP
weights. An exemplar style (:data:`EXEMPLAR_STYLES`) has a few style pictures in a styles folder
given at training time (``--style-data``), chosen by looking at them: the stylised portraits of
``../shared/data/styles`` in this project. Its recipe renders the look those pictures share
(smooth 3D shading, soft painted light, outlines: chosen per style by looking at them) in the
pictures' own colours (a :class:`Palette` measured on their face crops). Until 2026-11-29 these
styles were learned from the pictures alone (encoder feature statistics and colours,
:func:`models.layer_selection.exemplar_style_loss`, which a user's ``style add`` still uses):
the renders stayed palettes of the photograph. Names, descriptions and prompt keywords live in
:mod:`models.style_names` (shared with the receiver).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
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
    "PHOTOGRAPH",
    "Palette",
    "exemplar_palette",
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


@dataclass(frozen=True)
class Palette:
    """An exemplar style's colours: mean and spread of each CIELAB channel (OpenCV's 8-bit
    scale: L, a, b in 0..255) over the pixels of its pictures' face crops."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, pictures: torch.Tensor) -> Palette:
        """The palette of ``pictures`` (Nx3xHxW in [0, 1])."""
        if pictures.dim() != 4 or pictures.shape[1] != 3 or pictures.shape[0] == 0:
            raise ValueError(f"expected Nx3xHxW pictures, got shape {tuple(pictures.shape)}")
        rgb = (pictures.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        lab = cv2.cvtColor(rgb.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3)
        mean, std = lab.astype(np.float64).mean(0), lab.astype(np.float64).std(0)
        return cls(
            (float(mean[0]), float(mean[1]), float(mean[2])),
            (float(std[0]), float(std[1]), float(std[2])),
        )


PHOTOGRAPH = Palette((111.5, 135.0, 135.2), (65.3, 11.1, 12.8))
"""The palette of the face crops a call sends: 8 frames of each of 99 clips of
``../shared/data/train`` (the validation and eval people left out), 2026-11-29."""


def _recolour(
    image: np.ndarray, palette: Palette, strength: tuple[float, float, float]
) -> np.ndarray:
    """``image`` moved toward ``palette`` by ``strength`` per CIELAB channel (L, a, b; 0 keeps
    the channel, 1 takes the palette's): each channel mapped by the one affine map that takes
    :data:`PHOTOGRAPH`'s mean and spread to the palette's (Reinhard's colour transfer with the
    photographs' statistics instead of each frame's own, so that the target is one fixed
    function of the pixel, which a style delta can learn: with each frame's own statistics the
    `pixar` delta went 18 % of the way to its targets, `sketch`'s 56 %)."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    mean, std = np.array(PHOTOGRAPH.mean, np.float32), np.array(PHOTOGRAPH.std, np.float32)
    spread, centre = np.array(palette.std, np.float32), np.array(palette.mean, np.float32)
    moved = (lab - mean) / std * spread + centre
    lab += np.array(strength, np.float32) * (moved - lab)
    return cv2.cvtColor(np.clip(lab, 0, 255).round().astype(np.uint8), cv2.COLOR_LAB2RGB)


def _saturate(image: np.ndarray, factor: float) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 255)
    return cv2.cvtColor(hsv.round().astype(np.uint8), cv2.COLOR_HSV2RGB)


def _lighten(image: np.ndarray, gamma: float) -> np.ndarray:
    """Gamma below 1 lifts the mid-tones (a high-key picture)."""
    return (255 * (image / 255.0) ** gamma).round().astype(np.uint8)


def _soft_bands(image: np.ndarray, bands: int, sharpness: float) -> np.ndarray:
    """Lightness in ``bands`` levels joined by smooth steps (painted light and shade, softer
    than :func:`_quantize`'s hard bands); hues untouched."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    level = lab[..., 0] / 255 * bands
    base, fraction = np.floor(level), level - np.floor(level)
    lab[..., 0] = 255 * (base + 1 / (1 + np.exp(-(fraction - 0.5) * sharpness))) / bands
    return cv2.cvtColor(np.clip(lab, 0, 255).round().astype(np.uint8), cv2.COLOR_LAB2RGB)


def _ink_lines(image: np.ndarray, sigma: float, threshold: float, steepness: float) -> np.ndarray:
    """HxW float32 ink coverage of ``image``'s line drawing, 1 on a line, 0 on paper: the
    extended difference of Gaussians (XDoG, Winnemoeller 2012) of its luminance, a smooth
    function of the pixels (a style delta can learn it; the thresholded lines of
    :func:`_edge_mask` mark whole shadows, which the picture styles drew as brown blotches)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    dog = cv2.GaussianBlur(grey, (0, 0), sigma) - cv2.GaussianBlur(grey, (0, 0), 1.6 * sigma)
    darker = np.minimum(dog + threshold, 0.0)
    return (-np.tanh(steepness * darker)).astype(np.float32)


def _draw(image: np.ndarray, ink: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """``image`` with ``ink`` (:func:`_ink_lines`) drawn over it in ``colour``."""
    cover = ink[..., None]
    out = (1 - cover) * image.astype(np.float32) + cover * np.array(colour, np.float32)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _smooth(image: np.ndarray, sigma_s: float, sigma_r: float) -> np.ndarray:
    """Skin texture and wrinkles gone, outlines kept (edge-preserving filter)."""
    return cv2.edgePreservingFilter(
        image, flags=cv2.RECURS_FILTER, sigma_s=sigma_s, sigma_r=sigma_r
    )


def _flat(image: np.ndarray) -> np.ndarray:
    """Flat colour fills: each pixel takes the mode of its neighbours of like colour (mean
    shift), so regions read as painted areas rather than photographed surfaces."""
    return cv2.pyrMeanShiftFiltering(image, sp=6, sr=20)


def _pixar(image: np.ndarray, palette: Palette) -> np.ndarray:
    """3D animation: plastic-smooth surfaces, volume (large-scale light and shade deepened),
    bright saturated colour, the pictures' palette; no outlines."""
    smooth = cv2.bilateralFilter(_smooth(image, 40, 0.3), 9, 40, 9)
    lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB).astype(np.float32)
    lightness = lab[..., 0]
    lab[..., 0] = lightness + 0.8 * (lightness - cv2.GaussianBlur(lightness, (0, 0), 10))
    shaded = cv2.cvtColor(np.clip(lab, 0, 255).round().astype(np.uint8), cv2.COLOR_LAB2RGB)
    return _lighten(_saturate(_recolour(shaded, palette, (0.6, 0.8, 0.8)), 1.45), 0.85)


def _disney_princess(image: np.ndarray, palette: Palette) -> np.ndarray:
    """2D hand-drawn animation: flat fills, light in three soft bands, bright warm colour from
    the pictures, clean brown ink lines."""
    smooth = _smooth(image, 60, 0.4)
    banded = _soft_bands(_flat(smooth), bands=3, sharpness=10)
    coloured = _lighten(_saturate(_recolour(banded, palette, (0.2, 0.7, 0.7)), 1.2), 0.6)
    return _draw(coloured, _ink_lines(smooth, 1.2, 0.012, 60), (70, 35, 25))


def _anime_painting(image: np.ndarray, palette: Palette) -> np.ndarray:
    """A painted anime portrait: flat fills, high-key, light and shade in two soft bands, the
    pictures' pale colours, fine dark line art."""
    smooth = _smooth(image, 60, 0.4)
    banded = _soft_bands(_flat(smooth), bands=2, sharpness=14)
    coloured = _lighten(_saturate(_recolour(banded, palette, (0.5, 0.8, 0.8)), 1.1), 0.7)
    return _draw(coloured, _ink_lines(smooth, 0.9, 0.008, 80), (40, 30, 50))


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

_PICTURE_OPERATIONS: dict[str, Callable[[np.ndarray, Palette], np.ndarray]] = {
    "disney-princess": _disney_princess,
    "pixar": _pixar,
    "anime-painting": _anime_painting,
}

CLASSICAL_STYLES: tuple[str, ...] = tuple(_OPERATIONS)

BUILTIN_STYLES: dict[str, StyleName] = {style.name: style for style in BUILTIN_STYLE_NAMES}


def stylize(image: np.ndarray, name: str, palette: Palette | None = None) -> np.ndarray:
    """``image`` (HxWx3 uint8 RGB) rendered in built-in style ``name``; same shape and dtype.

    An exemplar style needs the ``palette`` of its pictures (:func:`exemplar_palette`); a
    classical style takes none.
    """
    if name not in _OPERATIONS and name not in _PICTURE_OPERATIONS:
        raise ValueError(f"unknown built-in style {name!r}; available: {', '.join(BUILTIN_STYLES)}")
    if name in _PICTURE_OPERATIONS and palette is None:
        raise ValueError(
            f"style {name!r} takes its colours from its pictures: give their palette "
            "(exemplar_palette)"
        )
    if name in _OPERATIONS and palette is not None:
        raise ValueError(f"style {name!r} is a classical recipe: it takes no palette")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
    image = np.ascontiguousarray(image)
    if palette is not None:
        return np.ascontiguousarray(_PICTURE_OPERATIONS[name](image, palette))
    return np.ascontiguousarray(_OPERATIONS[name](image))


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
            f"style {name!r} takes its colours from pictures: give their folder (--style-data)"
        )
    paths = [directory / file for file in EXEMPLAR_STYLES[name]]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise ValueError(f"style {name!r}: {directory} lacks {', '.join(missing)}")
    images = [read_style_image(path) for path in paths]
    return exemplar_tensor(images, size, cropper, names=[str(path) for path in paths])


def exemplar_palette(
    name: str, directory: Path | None, size: int, cropper: FaceCropper | None = None
) -> Palette:
    """The :class:`Palette` of exemplar style ``name``'s pictures (see :func:`load_exemplars`)."""
    return Palette.of(load_exemplars(name, directory, size, cropper))
