"""Text-guided adaptive layer selection: which generator layers a style needs, and their delta.

For a new prompt (StyleGAN-NADA's scheme adapted to this generator): a few probe steps of
gradient descent on the style loss show which layers the loss wants to move most, relative to
their size; only the top-k of those are then optimised, for a bounded number of steps. The
result is a :class:`StyleDelta` over those layers. The loss is any callable returning a
scalar through the generator, so training can mix CLIP-directional, image and keypoint losses;
:func:`clip_style_loss` builds the CLIP directional one: 1 - cos(dI, dT) with
dT = E_T(prompt) - E_T(neutral) and dI = E_I(stylised render) - E_I(unstylised render).

:func:`exemplar_style_loss` needs no pretrained network: the look of a few style pictures
(exemplars) is matched through the means and Gram matrices of the generator's own (frozen)
encoder features and through the colour distribution (sliced 1-D quantiles of RGB), while
:func:`structure_loss` (keypoints on the styled render stay where the motion put them) and
:func:`low_frequency_loss` (the coarse light/dark layout of the unstyled render is kept, so the
person stays recognisable) hold identity and motion. With CLIP, the exemplars are also an
*image prompt*: the same directional loss as a text prompt's, along dE = mean E_I(exemplars) -
mean E_I(unstylised render), the CLIP image-embedding direction from a neutral render to the
exemplars.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.generator import (
    OcclusionAwareGenerator,
    reference_style_layer_names,
    style_finish_layer_names,
    style_layer_names,
)
from models.style_delta import StyleDelta
from models.text_encoder import ClipGuide

__all__ = [
    "NEUTRAL_PROMPT",
    "AdaptationCancelled",
    "AdaptationConfig",
    "ExemplarWeights",
    "LossFn",
    "adapt_style",
    "clip_image_direction",
    "clip_style_loss",
    "colour_distribution_loss",
    "directional_loss",
    "exemplar_style_loss",
    "feature_statistics",
    "feature_statistics_loss",
    "gram_matrix",
    "low_frequency_loss",
    "score_layers",
    "select_layers",
    "structure_loss",
]

log = logging.getLogger(__name__)

LossFn = Callable[[], torch.Tensor]
StopFn = Callable[[], bool]


class AdaptationCancelled(RuntimeError):
    """Raised between steps when the caller's ``should_stop`` says the result is not wanted."""


NEUTRAL_PROMPT = "a photo of a face"


@dataclass(frozen=True)
class AdaptationConfig:
    """Budget of one prompt's adaptation."""

    top_k: int = 4
    probe_steps: int = 3
    steps: int = 40
    lr: float = 0.01
    # Exemplar (style picture) adaptation: 0.01 diverged on real lite-128 weights (the loss
    # rose 10 -> 74 in 20 steps), 1e-3 fell 10 -> 2.9.
    image_lr: float = 1e-3
    neutral_prompt: str = NEUTRAL_PROMPT
    progress: bool = False  # a progress bar of the adaptation steps (stderr)


def score_layers(
    generator: nn.Module,
    loss_fn: LossFn,
    probe_steps: int,
    candidates: list[str] | None = None,
    probe_lr: float = 0.05,
    should_stop: StopFn | None = None,
) -> dict[str, float]:
    """How far ``probe_steps`` of normalised gradient descent move each candidate layer,
    relative to the layer's own norm. The generator is restored exactly afterwards.

    Plain (globally normalised) gradient steps rather than Adam: Adam moves every weight by
    about the learning rate, which would rank layers by their size, not by what the loss needs.
    """
    if probe_steps < 1:
        raise ValueError(f"probe_steps must be at least 1, got {probe_steps}")
    layers = _layer_params(generator, candidates or _candidate_layers(generator))
    params = [p for group in layers.values() for p in group]
    with _optimising(generator, params) as originals:
        for step in range(probe_steps):
            _stop_if_asked(should_stop)
            loss = _checked(loss_fn(), f"probe step {step}")
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            present = [g for g in grads if g is not None]
            if not present:
                raise ValueError("the style loss does not depend on any candidate layer")
            total = torch.stack([g.pow(2).sum() for g in present]).sum().sqrt()
            with torch.no_grad():
                for param, grad in zip(params, grads, strict=True):
                    if grad is not None:
                        param.sub_(probe_lr * grad / (total + 1e-12))
        with torch.no_grad():
            return {
                name: _relative_change(group, [originals[id(p)] for p in group])
                for name, group in layers.items()
            }


def select_layers(
    generator: nn.Module,
    loss_fn: LossFn,
    top_k: int,
    probe_steps: int,
    candidates: list[str] | None = None,
    should_stop: StopFn | None = None,
) -> list[str]:
    """The generator's reference style and style finish (every style adapts them whole: they
    are the identity until a style changes them, see :class:`models.generator.ReferenceStyle`
    and :class:`models.generator.StyleFinish`), then the ``top_k`` other layers the loss
    moves most (see :func:`score_layers`)."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    finish = (
        reference_style_layer_names(generator) + style_finish_layer_names(generator)
        if candidates is None
        else []
    )
    others = [name for name in candidates or _candidate_layers(generator) if name not in finish]
    scores = score_layers(generator, loss_fn, probe_steps, others, should_stop=should_stop)
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    log.debug("layer scores: %s", {name: round(scores[name], 6) for name in ranked})
    return finish + ranked[:top_k]


def adapt_style(
    generator: nn.Module,
    loss_fn: LossFn,
    layers: list[str],
    steps: int,
    lr: float,
    prompt: str = "",
    progress: bool = False,
    should_stop: StopFn | None = None,
) -> StyleDelta:
    """Optimise only ``layers`` for ``steps`` Adam steps; return their change as a StyleDelta.

    The generator is left as it was: apply the returned delta to use the style.
    ``should_stop`` is asked before every step; True raises :class:`AdaptationCancelled`.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    named = _layer_params(generator, layers)
    params = [p for group in named.values() for p in group]
    names = {id(p): name for name, p in generator.named_parameters()}
    optimizer = torch.optim.Adam(params, lr=lr)
    with _optimising(generator, params) as originals:
        bar = tqdm(range(steps), desc=f"adapting {prompt!r}", disable=not progress, leave=False)
        for step in bar:
            _stop_if_asked(should_stop)
            optimizer.zero_grad(set_to_none=True)
            loss = _checked(loss_fn(), f"step {step}")
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        with torch.no_grad():
            deltas = {names[id(p)]: (p - originals[id(p)]).detach().clone() for p in params}
    return StyleDelta(prompt, tuple(layers), deltas)


def directional_loss(
    stylised: torch.Tensor,
    unstylised: torch.Tensor,
    text_direction: torch.Tensor,
    min_norm: float = 0.05,
) -> torch.Tensor:
    """1 - cos(dI, dT) averaged over the batch. stylised, unstylised: BxD; text_direction: D.

    |dI| is floored at ``min_norm``: adaptation starts with dI = 0, where the plain cosine's
    gradient (1/|dI|) is huge and points along rounding noise; Adam's momentum then carries
    the first, random step for many more. Below the floor the loss just pushes along dT.
    """
    image_direction = stylised - unstylised
    unit_text = F.normalize(text_direction, dim=-1)
    cosine = (image_direction @ unit_text) / image_direction.norm(dim=-1).clamp_min(min_norm)
    return (1 - cosine).mean()


def clip_style_loss(
    generator: OcclusionAwareGenerator,
    clip: ClipGuide,
    prompt: str,
    source_image: torch.Tensor,
    kp_source: dict[str, torch.Tensor],
    neutral_prompt: str = NEUTRAL_PROMPT,
    jitter: float = 0.03,
    seed: int = 0,
    structure_detector: nn.Module | None = None,
    structure_weight: float = 100.0,  # ExemplarWeights.structure, measured there
) -> LossFn:
    """CLIP directional loss of ``generator`` rendering ``source_image`` (1x3xHxW).

    Renders at zero motion and at one small random head shift; the motion (which style layers
    never touch) and the unstylised embeddings are computed once, here. With
    ``structure_detector`` (the checkpoint's :attr:`~models.checkpoint.LoadedModels.structure`),
    ``structure_weight`` times :func:`structure_loss` (keypoints of the styled render against
    the unstylised render's) keeps the motion's structure, as in :func:`exemplar_style_loss`.
    """
    text_direction = clip.encode_text(prompt) - clip.encode_text(neutral_prompt)
    sources, kp_repeated, kp_driving = _still_and_shifted(source_image, kp_source, jitter, seed)
    detector = (
        None
        if structure_detector is None
        else copy.deepcopy(structure_detector).eval().requires_grad_(False)
    )
    with torch.no_grad():
        motion = generator.dense_motion_network(sources, kp_driving, kp_repeated)
        plain = generator.decode(generator.encode_source(sources), motion)
        unstylised = clip.encode_image(plain)
        plain_kp = None if detector is None else detector(plain)["value"]

    def loss() -> torch.Tensor:
        render = generator.decode(generator.encode_source(sources), motion)
        value = directional_loss(clip.encode_image(render), unstylised, text_direction)
        if detector is not None and plain_kp is not None:
            value = value + structure_weight * structure_loss(detector(render)["value"], plain_kp)
        return value

    return loss


def clip_image_direction(
    clip: ClipGuide, exemplars: torch.Tensor, neutral_embeddings: torch.Tensor
) -> torch.Tensor:
    """The image prompt's direction (D,): mean CLIP embedding of ``exemplars`` (Nx3xHxW in
    [0, 1]) minus the mean of ``neutral_embeddings`` (BxD, of unstylised renders)."""
    with torch.no_grad():
        return clip.encode_image(exemplars).mean(0) - neutral_embeddings.mean(0)


def structure_loss(styled_kp: torch.Tensor, driving_kp: torch.Tensor) -> torch.Tensor:
    """Motion survives stylisation: keypoints found on the stylised output (BxKx2) match the
    driving frame's (BxKx2)."""
    return F.l1_loss(styled_kp, driving_kp)


@dataclass(frozen=True)
class ExemplarWeights:
    """Weights of :func:`exemplar_style_loss`'s terms.

    Measured on the lite-128 generator of the quality run (one face, 5 pixar pictures, 20
    steps at lr 1e-3): structure 10 / low_frequency 2 let the styled render's keypoints drift
    10 px from the unstyled ones and washed the face out; 100 / 10 kept them within 1.7 px
    while the style terms still halved (10.2 -> 5.4 in all). Ablations, same setting: the
    feature statistics do most of the work (without colour: colour term 0.249 -> 0.113 anyway,
    keypoints 2.2 px); colour alone diverged (all terms rose, keypoints 18 px), so it is a
    minor term here. No patch discriminator: not measured.
    """

    feature_mean: float = field(
        default=1.0, metadata={"help": "weight of the encoder features' means to the pictures'"}
    )
    feature_gram: float = field(
        default=10.0, metadata={"help": "weight of the encoder features' Gram matrices"}
    )
    colour: float = field(default=5.0, metadata={"help": "weight of the colour distribution"})
    structure: float = field(
        default=100.0, metadata={"help": "weight of the keypoint term (motion survives)"}
    )
    low_frequency: float = field(
        default=10.0, metadata={"help": "weight of the coarse layout (the person stays)"}
    )
    # The CLIP image prompt, used only with CLIP. Not measured: no CLIP weights here; 5 puts
    # its starting value (about 1) level with the other style terms' (about 5).
    clip_image: float = field(
        default=5.0, metadata={"help": "weight of the CLIP image prompt (with CLIP weights)"}
    )


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """BxCxHxW -> BxCxC channel correlations, normalised by C*H*W."""
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def feature_statistics(features: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per level (BxCxHxW): (C channel means, CxC Gram matrix), averaged over the batch."""
    return [(f.mean(dim=(0, 2, 3)), gram_matrix(f).mean(dim=0)) for f in features]


def feature_statistics_loss(
    features: list[torch.Tensor], targets: list[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean term, Gram term): squared distances of each level's statistics to ``targets``
    (from :func:`feature_statistics`), each relative to the target's size, averaged."""
    means, grams = [], []
    for (mean, gram), (target_mean, target_gram) in zip(
        feature_statistics(features), targets, strict=True
    ):
        means.append((mean - target_mean).pow(2).sum() / target_mean.pow(2).sum().clamp_min(1e-8))
        grams.append((gram - target_gram).pow(2).sum() / target_gram.pow(2).sum().clamp_min(1e-8))
    return torch.stack(means).mean(), torch.stack(grams).mean()


def _colour_projections(count: int = 8, seed: int = 0) -> torch.Tensor:
    """count x 3 unit directions in RGB: the three channels, luminance, then random ones."""
    fixed = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.299, 0.587, 0.114]])
    extra = torch.randn(max(0, count - 4), 3, generator=torch.Generator().manual_seed(seed))
    return F.normalize(torch.cat([fixed, extra])[:count], dim=1)


def colour_quantiles(images: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW -> P x (B*H*W) sorted projections of every pixel (PxN), for matching."""
    pixels = images.permute(1, 0, 2, 3).reshape(3, -1)
    return (projections.to(images) @ pixels).sort(dim=1).values


def colour_distribution_loss(
    images: torch.Tensor, target_quantiles: torch.Tensor, projections: torch.Tensor
) -> torch.Tensor:
    """Sliced 1-D Wasserstein distance between the pixel colours of ``images`` (Bx3xHxW) and
    an exemplar set (``target_quantiles``: PxM from :func:`colour_quantiles`, any M)."""
    sorted_values = colour_quantiles(images, projections)
    target = F.interpolate(
        target_quantiles.unsqueeze(0), size=sorted_values.shape[1], mode="linear"
    ).squeeze(0)
    return (sorted_values - target).abs().mean()


def low_frequency_loss(styled: torch.Tensor, plain: torch.Tensor, size: int = 8) -> torch.Tensor:
    """The person stays recognisable: the coarse luminance layout (``size`` x ``size``, each
    image standardised, so a palette change costs nothing) of ``styled`` matches ``plain``.
    Both Bx3xHxW."""

    def layout(images: torch.Tensor) -> torch.Tensor:
        luma = (images * torch.tensor([0.299, 0.587, 0.114]).to(images).view(1, 3, 1, 1)).sum(1)
        coarse = F.adaptive_avg_pool2d(luma.unsqueeze(1), size).flatten(1)
        return (coarse - coarse.mean(1, keepdim=True)) / coarse.std(1, keepdim=True).add(1e-3)

    return (layout(styled) - layout(plain)).abs().mean()


def exemplar_style_loss(
    generator: OcclusionAwareGenerator,
    structure_detector: nn.Module,
    exemplars: torch.Tensor,
    source_image: torch.Tensor,
    kp_source: dict[str, torch.Tensor],
    weights: ExemplarWeights | None = None,
    jitter: float = 0.03,
    seed: int = 0,
    terms: dict[str, float] | None = None,
    clip: ClipGuide | None = None,
) -> LossFn:
    """Exemplar-guided loss of ``generator`` rendering ``source_image`` (Bx3xHxW) in the look of
    ``exemplars`` (Nx3xHxW in [0, 1], face crops of the style pictures).

    Renders each source at zero motion and at one small random head shift (as
    :func:`clip_style_loss`). Features come from a frozen copy of the unstyled encoder, so the
    measurement does not move while the encoder's own layers adapt. ``terms``, when given,
    receives the latest unweighted value of every term. With ``clip``, the term ``clip_image``
    (the exemplars as an image prompt, see the module's docstring) is added.
    ``structure_detector`` measures the structure term (the checkpoint's
    :attr:`~models.checkpoint.LoadedModels.structure`); ``kp_source`` is the codec detector's.
    """
    weights = weights or ExemplarWeights()
    frozen = copy.deepcopy(generator).eval().requires_grad_(False)
    detector = copy.deepcopy(structure_detector).eval().requires_grad_(False)
    count = source_image.shape[0]
    sources, kp_repeated, kp_driving = _still_and_shifted(source_image, kp_source, jitter, seed)
    projections = _colour_projections()
    with torch.no_grad():
        motion = generator.dense_motion_network(sources, kp_driving, kp_repeated)
        plain = generator.decode(generator.encode_source(sources), motion)
        plain_kp = detector(plain)["value"]
        targets = feature_statistics(frozen.encode_source(exemplars)[1:])
        target_colours = colour_quantiles(exemplars, projections)
        if clip is not None:
            plain_embeddings = clip.encode_image(plain)
            image_direction = clip_image_direction(clip, exemplars, plain_embeddings)

    def loss() -> torch.Tensor:
        render = generator.decode(generator.encode_source(sources), motion)
        mean, gram = feature_statistics_loss(frozen.encode_source(render)[1:], targets)
        values = {
            "feature_mean": mean,
            "feature_gram": gram,
            "colour": colour_distribution_loss(render, target_colours, projections),
            "structure": structure_loss(detector(render)["value"], plain_kp),
            "low_frequency": low_frequency_loss(render[:count], plain[:count]),
        }
        if clip is not None:
            values["clip_image"] = directional_loss(
                clip.encode_image(render), plain_embeddings, image_direction
            )
        if terms is not None:
            terms.update({key: value.item() for key, value in values.items()})
        factors = asdict(weights)
        return torch.stack([factors[key] * value for key, value in values.items()]).sum()

    return loss


def _still_and_shifted(
    source_image: torch.Tensor, kp_source: dict[str, torch.Tensor], jitter: float, seed: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The B sources twice (2Bx3xHxW), their keypoints twice, and driving keypoints: the
    sources' own (zero motion), then shifted by a seeded uniform head shift of up to ``jitter``."""
    generator_rng = torch.Generator().manual_seed(seed)
    shift = (torch.rand(kp_source["value"].shape, generator=generator_rng) * 2 - 1) * jitter
    kp_repeated = {
        key: value.repeat(2, *([1] * (value.dim() - 1))) for key, value in kp_source.items()
    }
    kp_driving = dict(kp_repeated)
    kp_driving["value"] = torch.cat(
        [kp_source["value"], kp_source["value"] + shift.to(source_image)]
    )
    return source_image.repeat(2, 1, 1, 1), kp_repeated, kp_driving


def _candidate_layers(generator: nn.Module) -> list[str]:
    if isinstance(generator, OcclusionAwareGenerator):
        return style_layer_names(generator)
    return [name for name, m in generator.named_modules() if any(m.parameters(recurse=False))]


def _layer_params(generator: nn.Module, layers: list[str]) -> dict[str, list[nn.Parameter]]:
    modules = dict(generator.named_modules())
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise ValueError(f"the generator has no layer {unknown[0]!r}")
    grouped = {name: list(modules[name].parameters(recurse=False)) for name in layers}
    empty = [name for name, group in grouped.items() if not group]
    if empty:
        raise ValueError(f"layer {empty[0]!r} has no parameters of its own")
    return grouped


@contextmanager
def _optimising(
    generator: nn.Module, params: list[nn.Parameter]
) -> Iterator[dict[int, torch.Tensor]]:
    """Only ``params`` require gradients inside; values and flags are restored on exit.

    Yields the original values by id(param). The generator stays in eval mode so that batch
    norm statistics are used, not updated.
    """
    flags = {id(p): p.requires_grad for p in generator.parameters()}
    was_training = generator.training
    originals = {id(p): p.detach().clone() for p in params}
    generator.eval()
    generator.requires_grad_(False)
    for param in params:
        param.requires_grad_(True)
    try:
        with torch.enable_grad():
            yield originals
    finally:
        with torch.no_grad():
            for param in params:
                param.copy_(originals[id(param)])
        for param in generator.parameters():
            param.requires_grad_(flags[id(param)])
        generator.train(was_training)


def _relative_change(params: list[nn.Parameter], originals: list[torch.Tensor]) -> float:
    moved = sum(float((p - o).pow(2).sum()) for p, o in zip(params, originals, strict=True))
    size = sum(float(o.pow(2).sum()) for o in originals)
    return (moved / (size + 1e-12)) ** 0.5


def _stop_if_asked(should_stop: StopFn | None) -> None:
    if should_stop is not None and should_stop():
        raise AdaptationCancelled("style adaptation cancelled")


def _checked(loss: torch.Tensor, where: str) -> torch.Tensor:
    if loss.dim() != 0:
        raise ValueError(f"the style loss must be a scalar, got shape {tuple(loss.shape)}")
    if not torch.isfinite(loss):
        raise ValueError(f"the style loss is {loss.item()} at {where}")
    return loss
