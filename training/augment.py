"""Training augmentation of (source, driving) pairs: one random draw applied to both frames.

Both frames of a pair get the same flip, scale/crop jitter and colour jitter, so the motion
between them stays the clip's own while the model sees more framings, sizes and colours of
each face than the clips hold. Frames are SxSx3 uint8 RGB; the output has the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["NONE", "Augmentation", "augment_pair"]


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random draw (0 turns a jitter off)."""

    flip: bool = True
    scale: float = 0.08  # zoom by a factor in [1 - scale, 1 + scale]
    shift: float = 0.05  # move by up to this fraction of the side
    brightness: float = 0.15  # add up to this (in [0, 1] units)
    contrast: float = 0.15  # multiply the deviation from the mean by [1 - c, 1 + c]
    saturation: float = 0.2  # blend towards grey / away from it by up to this
    hue: float = 0.03  # rotate the colour channels' mix by up to this fraction of a turn


NONE = Augmentation(False, 0, 0, 0, 0, 0, 0)


def augment_pair(
    source: np.ndarray, driving: np.ndarray, rng: np.random.Generator, aug: Augmentation
) -> tuple[np.ndarray, np.ndarray]:
    """The same random flip, geometric and colour jitter applied to both SxSx3 uint8 frames."""
    if source.shape != driving.shape:
        raise ValueError(f"pair frames differ in shape: {source.shape} vs {driving.shape}")
    flip = aug.flip and bool(rng.integers(0, 2))
    matrix = _geometry(source.shape[0], rng, aug)
    colour = _colour(rng, aug)
    return _apply(source, flip, matrix, colour), _apply(driving, flip, matrix, colour)


def _geometry(side: int, rng: np.random.Generator, aug: Augmentation) -> np.ndarray | None:
    if aug.scale == 0 and aug.shift == 0:
        return None
    zoom = 1.0 + rng.uniform(-aug.scale, aug.scale)
    dx, dy = rng.uniform(-aug.shift, aug.shift, size=2) * side
    centre = (side - 1) / 2
    return np.array([[zoom, 0.0, centre * (1 - zoom) + dx], [0.0, zoom, centre * (1 - zoom) + dy]])


def _colour(rng: np.random.Generator, aug: Augmentation) -> tuple[float, float, float, np.ndarray]:
    """(brightness offset, contrast gain, saturation gain, 3x3 hue rotation)."""
    angle = 2 * np.pi * rng.uniform(-aug.hue, aug.hue)
    # Rotation about the grey axis (1, 1, 1) / sqrt(3): hue changes, grey stays grey.
    cos, sin = np.cos(angle), np.sin(angle)
    k = np.full((3, 3), (1 - cos) / 3) + np.eye(3) * cos
    k += sin / np.sqrt(3) * np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]])
    return (
        rng.uniform(-aug.brightness, aug.brightness),
        1.0 + rng.uniform(-aug.contrast, aug.contrast),
        1.0 + rng.uniform(-aug.saturation, aug.saturation),
        k,
    )


def _apply(
    frame: np.ndarray,
    flip: bool,
    matrix: np.ndarray | None,
    colour: tuple[float, float, float, np.ndarray],
) -> np.ndarray:
    out = np.ascontiguousarray(frame[:, ::-1] if flip else frame)
    if matrix is not None:
        side = out.shape[0]
        out = cv2.warpAffine(
            out, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
    brightness, contrast, saturation, hue = colour
    pixels = out.astype(np.float32) / 255.0
    pixels = pixels @ hue.T.astype(np.float32)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * saturation
    pixels = (pixels - pixels.mean()) * contrast + pixels.mean() + brightness
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
