"""Stage 2: domain adaptation of the trained generator toward each built-in style.

For every style the loss mixes
* image-image: the rendered driving frame should look like ``stylize(driving frame)`` (for an
  exemplar style, its recipe in the palette of its pictures, :func:`training.styles.stylize`),
* structure preservation: keypoints detected on the stylised output match those detected on
  the unstyled render of the same motion (what ``bench stylesheet`` measures: the motion the
  receiver gets still moves the stylised face as it moves the unstyled one), both found by the
  checkpoint's structure detector (:mod:`training.structure`) when it has one,
* CLIP directional and global losses toward the style's description when CLIP weights exist.
The models' text-guided adaptive layer selection picks the generator layers this loss moves
most and adapts only them; the result is a small :class:`StyleDelta` per style, stored in the
checkpoint's ``styles``. Networks stay in eval mode: BatchNorm statistics are not part of a
delta, so they must not drift.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.generator import (
    OcclusionAwareGenerator,
    reference_style_layer_names,
    style_finish_layer_names,
)
from models.layer_selection import (
    NEUTRAL_PROMPT,
    adapt_style,
    directional_loss,
    select_layers,
    structure_loss,
)
from models.style_delta import StyleDelta
from models.text_encoder import ClipGuide
from training.losses import clip_global_loss, ms_ssim_loss, multiscale_l1
from training.options import Stage2Weights
from training.styles import BUILTIN_STYLES, Palette, stylize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipTarget:
    """CLIP guidance toward one prompt: the model and the prompt's text embeddings."""

    guide: ClipGuide
    prompt_embedding: torch.Tensor  # D, unit norm
    direction: torch.Tensor  # D: E_T(prompt) - E_T(neutral prompt)

    @classmethod
    def for_prompt(cls, guide: ClipGuide, prompt: str) -> ClipTarget:
        embedding = guide.encode_text(prompt)
        return cls(guide, embedding, embedding - guide.encode_text(NEUTRAL_PROMPT))


@dataclass
class StyleBatch:
    """Fixed inputs of one adaptation step, computed once with the unstyled generator.

    source, driving, target (stylised driving), plain (unstyled reconstruction), plain_target
    (stylised ``plain``: what the style finish, which sees only the render, can learn):
    Bx3xHxW; kp_source, kp_driving: keypoint dicts as the codec's detector returns them;
    kp_plain: BxKx2 keypoints the structure detector finds on ``plain``.
    """

    source: torch.Tensor
    driving: torch.Tensor
    target: torch.Tensor
    plain: torch.Tensor
    plain_target: torch.Tensor
    kp_source: dict[str, torch.Tensor]
    kp_driving: dict[str, torch.Tensor]
    kp_plain: torch.Tensor


def stylize_batch(images: torch.Tensor, name: str, palette: Palette | None = None) -> torch.Tensor:
    """Bx3xHxW in [0, 1] -> the same frames in built-in style ``name`` (an exemplar style in
    its pictures' ``palette``)."""
    arrays = (images.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    styled = np.stack([stylize(array, name, palette) for array in arrays])
    return torch.from_numpy(styled).permute(0, 3, 1, 2).float().div(255).to(images.device)


@torch.no_grad()
def make_style_batches(
    pairs: list[tuple[torch.Tensor, torch.Tensor]],
    name: str,
    kp_detector: nn.Module,
    generator: nn.Module,
    structure_detector: nn.Module,
    palette: Palette | None = None,
) -> list[StyleBatch]:
    """One :class:`StyleBatch` per (source, driving) pair of batches, for style ``name`` (an
    exemplar style needs its pictures' ``palette``)."""
    batches = []
    for source, driving in pairs:
        kp_source, kp_driving = kp_detector(source), kp_detector(driving)
        plain = generator(source, kp_driving=kp_driving, kp_source=kp_source)["prediction"]
        target = stylize_batch(driving, name, palette)
        plain_target = stylize_batch(plain, name, palette)
        kp_plain = structure_detector(plain)["value"]
        batches.append(
            StyleBatch(
                source, driving, target, plain, plain_target, kp_source, kp_driving, kp_plain
            )
        )
    return batches


def style_loss(
    generator: nn.Module,
    structure_detector: nn.Module,
    batches: list[StyleBatch],
    weights: Stage2Weights,
    clip: ClipTarget | None = None,
    terms: dict[str, float] | None = None,
) -> Callable[[], torch.Tensor]:
    """The ``loss_fn`` for select_layers/adapt_style: each call uses the next batch.

    terms: if given, receives the latest value of every weighted term (for logging).
    """
    cycle = itertools.cycle(batches)

    def loss_fn() -> torch.Tensor:
        batch = next(cycle)
        output = generator(batch.source, kp_driving=batch.kp_driving, kp_source=batch.kp_source)[
            "prediction"
        ]
        losses = {
            "image_l1": weights.image_l1 * multiscale_l1(output, batch.target),
            "image_ms_ssim": weights.image_ms_ssim * ms_ssim_loss(output, batch.target),
            "structure": weights.structure
            * structure_loss(structure_detector(output)["value"], batch.kp_plain),
        }
        if clip is not None:
            styled = clip.guide.encode_image(output)
            with torch.no_grad():
                plain = clip.guide.encode_image(batch.plain)
            losses["clip_directional"] = weights.clip_directional * directional_loss(
                styled, plain, clip.direction
            )
            losses["clip_global"] = weights.clip_global * clip_global_loss(
                styled, clip.prompt_embedding
            )
        if terms is not None:
            terms.update({key: value.item() for key, value in losses.items()})
        return torch.stack(list(losses.values())).sum()

    return loss_fn


def train_style(
    name: str,
    generator: OcclusionAwareGenerator,
    kp_detector: nn.Module,
    structure_detector: nn.Module,
    batches: list[StyleBatch],
    top_k: int,
    probe_steps: int,
    steps: int,
    lr: float,
    weights: Stage2Weights | None = None,
    clip: ClipTarget | None = None,
    finish_steps: int = 0,
    finish_lr: float = 3e-3,
    reference_steps: int = 0,
    reference_frames: list[torch.Tensor] | None = None,
    palette: Palette | None = None,
) -> tuple[StyleDelta, dict[str, float]]:
    """Adapt the generator's most relevant layers to style ``name`` (its image targets in
    ``batches``, weighed by ``weights``); generator left unchanged. Returns the delta and the
    last value of each loss term.

    With ``reference_steps`` the reference style is first fitted alone
    (:func:`fit_reference`, at ``finish_lr``, on ``reference_frames`` — batches of real frames,
    stylised here in ``palette`` — or else the driving frames of ``batches``), with
    ``finish_steps`` the style finish
    (:func:`fit_finish`); the usual adaptation goes on from them, and the returned delta holds
    all. The finish's fit assumes an unrestyled reference: give one or the other.
    """

    if name not in BUILTIN_STYLES:
        raise ValueError(f"unknown built-in style {name!r}; available: {', '.join(BUILTIN_STYLES)}")
    generator.eval()
    kp_detector.eval().requires_grad_(False)
    structure_detector.eval().requires_grad_(False)
    if reference_steps > 0 and finish_steps > 0:
        raise ValueError(
            "fit the reference style or the style finish first, not both: the finish's fit "
            "assumes an unrestyled reference"
        )
    if reference_steps > 0:
        examples = (
            reference_examples(reference_frames, name, palette)
            if reference_frames
            else [(batch.driving, batch.target) for batch in batches]
        )
        finish = fit_reference(generator, examples, reference_steps, finish_lr)
    elif finish_steps > 0:
        finish = fit_finish(generator, batches, finish_steps, finish_lr)
    else:
        finish = StyleDelta(name, (), {})
    terms: dict[str, float] = {}
    loss_fn = style_loss(
        generator, structure_detector, batches, weights or Stage2Weights(), clip, terms
    )
    with finish.applied(generator):
        layers = select_layers(generator, loss_fn, top_k=top_k, probe_steps=probe_steps)
        log.info("style %s: adapting layers %s", name, ", ".join(layers))
        delta = adapt_style(generator, loss_fn, layers, steps=steps, lr=lr)
    for key, change in finish.deltas.items():
        delta.deltas[key] = delta.deltas.get(key, torch.zeros_like(change)) + change
    delta.layers = tuple(dict.fromkeys(delta.layers + finish.layers))
    delta.prompt = name
    kp_detector.requires_grad_(True)
    return delta, terms


def fit_finish(
    generator: OcclusionAwareGenerator, batches: list[StyleBatch], steps: int, lr: float
) -> StyleDelta:
    """The style finish alone fitted for ``steps`` Adam steps from each batch's unstyled render
    to the style's recipe of that render (``plain_target``, L1): the finish's change as a
    delta, generator left unchanged.

    Cheap (the renders are fixed: no generator pass), so it can take the thousands of steps
    the finish needs to learn a recipe's fine detail (lines, smoothing), which a style's usual
    few hundred joint steps do not give it. Its target is the recipe of the render, not of the
    real frame: the finish sees only the render, whose edges are softer than the frame's, so
    the lines a recipe draws on the frame are no function of its input and it learned their
    blurred average (training/README.md).
    """
    layers = style_finish_layer_names(generator)
    if not layers:
        raise ValueError("this generator has no style finish to fit")
    cycle = itertools.cycle(batches)

    def loss_fn() -> torch.Tensor:
        batch = next(cycle)
        assert generator.finish is not None
        return (generator.finish(batch.plain) - batch.plain_target).abs().mean()

    return adapt_style(generator, loss_fn, layers, steps=steps, lr=lr)


def fit_reference(
    generator: OcclusionAwareGenerator,
    examples: list[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    lr: float,
) -> StyleDelta:
    """The reference style alone fitted for ``steps`` Adam steps on ``examples``, batches of
    (real frames, the style's recipe of them) (L1): its change as a delta, generator left
    unchanged.

    The reference is a real frame, so the recipe's lines and flat fills are a function of what
    the reference style sees (unlike the finish's input, the softer render), and the fit needs
    no generator pass: thousands of steps cost minutes. Give it many frames of many people
    (:func:`reference_examples`): its U-Net learns a style's 48 adaptation frames by heart
    and then draws a new face washed out.
    """
    layers = reference_style_layer_names(generator)
    if not layers:
        raise ValueError("this generator has no reference style to fit")
    cycle = itertools.cycle(examples)

    def loss_fn() -> torch.Tensor:
        frames, targets = next(cycle)
        assert generator.restyle is not None
        return (generator.restyle(frames) - targets).abs().mean()

    return adapt_style(generator, loss_fn, layers, steps=steps, lr=lr)


def reference_examples(
    frames: list[torch.Tensor], name: str, palette: Palette | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(frames, style ``name``'s recipe of them) per batch of real frames (Bx3xHxW)."""
    return [(batch, stylize_batch(batch, name, palette)) for batch in frames]


@torch.no_grad()
def render_styles(
    generator: nn.Module,
    styles: Mapping[str, StyleDelta],
    source: torch.Tensor,
    kp_source: dict[str, torch.Tensor],
    kp_driving: dict[str, torch.Tensor],
) -> list[tuple[str, torch.Tensor]]:
    """(style name, Bx3xHxW prediction) for every style delta, for sample grids."""
    columns = []
    for name, delta in styles.items():
        with delta.applied(generator):
            prediction = generator(source, kp_driving=kp_driving, kp_source=kp_source)
        columns.append((name, prediction["prediction"]))
    return columns
