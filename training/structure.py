"""The structure detector: the codec's keypoints, found through a style.

The codec's keypoint detector learned from photographs, and it reads colour as much as shape:
the same render turned grey moves its keypoints 5.7 px at 128x128, the classical recipes of
:mod:`training.styles` move them 3-6 px (the old pop-art recipe, which turned hues round, 55
px), although not one pixel of the face moved. A style held to "the keypoints stay put" by
that detector could barely change a colour, and the figure "motion survives the style"
measured the palette.

The structure detector has the codec detector's architecture and starts as a copy of it; it is
distilled so that on a photograph *and on restyled copies of it* (a classical recipe, or grey,
a random colour mix, swapped channels, posterised, a gamma curve) it gives the keypoints and
Jacobians the codec detector finds on the photograph. Its BatchNorm statistics stay frozen, so
it never drifts on photographs for want of them. It only measures and keeps structure (stage 2,
``cartooncodec style add``, ``bench stylesheet``); the motion a call sends still comes from the
codec detector.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from models.keypoint_detector import KPDetector
from training.stage2 import stylize_batch
from training.styles import CLASSICAL_STYLES

__all__ = ["COLOUR_VARIANTS", "distill_structure_detector", "restyle", "structure_errors"]

log = logging.getLogger(__name__)

_LUMA = (0.299, 0.587, 0.114)


def _grey(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    luma = (images * images.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return luma.expand(-1, 3, -1, -1)


def _colour_mix(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A random 3x3 colour matrix about mid-grey plus a colour cast."""
    matrix = images.new_tensor(np.eye(3) + 0.6 * rng.standard_normal((3, 3)))
    cast = images.new_tensor(0.2 * rng.standard_normal(3)).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", matrix, images - 0.5) + 0.5 + cast


def _channels(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return images[:, rng.permutation(3)]


def _posterise(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    levels = int(rng.integers(2, 6))
    return (images * levels).floor().clamp(max=levels - 1) / (levels - 1)


def _gamma(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return images.clamp(1e-4, 1) ** float(np.exp(0.7 * rng.standard_normal()))


COLOUR_VARIANTS: dict[str, Callable[[torch.Tensor, np.random.Generator], torch.Tensor]] = {
    "grey": _grey,
    "colour-mix": _colour_mix,
    "channels": _channels,
    "posterise": _posterise,
    "gamma": _gamma,
}
"""Colour changes that keep every edge where it is: name -> (Bx3xHxW in [0, 1], rng) -> same."""


def restyle(images: torch.Tensor, name: str, rng: np.random.Generator) -> torch.Tensor:
    """``images`` (Bx3xHxW in [0, 1]) as classical style or colour variant ``name``."""
    if name in CLASSICAL_STYLES:
        return stylize_batch(images, name)
    if name not in COLOUR_VARIANTS:
        known = ", ".join([*CLASSICAL_STYLES, *COLOUR_VARIANTS])
        raise ValueError(f"unknown restyling {name!r}; known: {known}")
    return COLOUR_VARIANTS[name](images, rng).clamp(0, 1)


def _keypoint_loss(
    output: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> torch.Tensor:
    """L1 of keypoints (in [-1, 1] units) plus a tenth of the Jacobians' L1."""
    loss = (output["value"] - target["value"]).abs().mean()
    if "jacobian" in target:
        loss = loss + 0.1 * (output["jacobian"] - target["jacobian"]).abs().mean()
    return loss


def distill_structure_detector(
    teacher: KPDetector,
    batches: Iterable[torch.Tensor],
    steps: int,
    lr: float = 2e-4,
    seed: int = 0,
    restylings: tuple[str, ...] = (*CLASSICAL_STYLES, *COLOUR_VARIANTS),
    progress: Callable[[int, float], None] | None = None,
    start: KPDetector | None = None,
) -> KPDetector:
    """A copy of ``start`` (default: of ``teacher``) trained for ``steps`` steps on ``batches``
    (Bx3xHxW photographs in [0, 1], B >= 2) to find the teacher's keypoints through
    ``restylings``; a ``start`` distilled earlier goes on from where it stopped.

    Each step keeps a quarter of the batch as it is (at least one frame) and restyles each other
    frame with a restyling drawn at random; every output is held to the teacher's on the
    photograph. ``progress(step, loss)`` is called after each step. ``teacher`` and ``start``
    are unchanged.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not restylings:
        raise ValueError("no restylings: give at least one classical style or colour variant")
    rng = np.random.default_rng(seed)
    teacher = teacher.eval()
    student = copy.deepcopy(teacher if start is None else start).eval().requires_grad_(True)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    batches = iter(batches)
    for step in range(1, steps + 1):
        images = next(batches)
        if images.shape[0] < 2:
            raise ValueError(f"a distillation batch needs >= 2 frames, got {images.shape[0]}")
        kept = max(1, images.shape[0] // 4)
        with torch.no_grad():
            target = teacher(images)
            drawn = rng.choice(len(restylings), images.shape[0] - kept)
            styled = images.clone()
            for index in np.unique(drawn):
                rows = kept + np.flatnonzero(drawn == index)
                styled[rows] = restyle(images[rows], restylings[index], rng)
        loss = _keypoint_loss(student(styled), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(step, loss.item())
    return student.requires_grad_(False)


@torch.no_grad()
def structure_errors(
    detector: nn.Module,
    reference: nn.Module,
    images: torch.Tensor,
    seed: int = 0,
    restylings: tuple[str, ...] = (*CLASSICAL_STYLES, *COLOUR_VARIANTS),
) -> dict[str, float]:
    """Mean distance in pixels between ``detector`` on ``images`` (Bx3xSxS in [0, 1]) and on
    each of their ``restylings``, and ``reference`` on ``images`` as they are; key
    "photograph": no restyling."""
    rng = np.random.default_rng(seed)
    target = reference.eval()(images)["value"]
    half_side = images.shape[-1] / 2
    errors = {}
    for name in ("photograph", *restylings):
        shown = images if name == "photograph" else restyle(images, name, rng)
        found = detector.eval()(shown)["value"]
        errors[name] = float((found - target).norm(dim=-1).mean() * half_side)
    return errors
