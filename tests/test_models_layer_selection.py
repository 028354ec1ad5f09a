from dataclasses import replace

import pytest
import torch

from models.config import get_preset
from models.generator import (
    OcclusionAwareGenerator,
    reference_style_layer_names,
    style_layer_names,
)
from models.keypoint_detector import KPDetector
from models.layer_selection import (
    AdaptationCancelled,
    ExemplarWeights,
    adapt_style,
    clip_image_direction,
    clip_style_loss,
    colour_distribution_loss,
    colour_quantiles,
    directional_loss,
    exemplar_style_loss,
    feature_statistics,
    feature_statistics_loss,
    gram_matrix,
    low_frequency_loss,
    score_layers,
    select_layers,
    structure_loss,
)
from models.style_delta import StyleDelta
from models.text_encoder import DEFAULT_CLIP_MODEL, ClipGuide, random_clip, tiny_clip
from tests.models_helpers import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def clip() -> ClipGuide:
    return tiny_clip(seed=0)


def _setup(
    clip: ClipGuide, prompt: str = "a watercolor painting", finish: int = 0, reference: int = 0
):
    config = get_preset("tiny")
    generator_config = replace(
        config.generator, style_finish_channels=finish, style_reference_channels=reference
    )
    config = replace(config, generator=generator_config)
    generator, detector = OcclusionAwareGenerator(config).eval(), KPDetector(config).eval()
    source = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        kp = detector(source)
    return generator, clip_style_loss(generator, clip, prompt, source, kp)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_directional_loss_is_one_minus_the_cosine_of_the_directions() -> None:
    direction = torch.tensor([3.0, 0.0])
    base = torch.tensor([[1.0, 1.0]])
    same = directional_loss(torch.tensor([[2.0, 1.0]]), base, direction)
    opposite = directional_loss(torch.tensor([[0.0, 1.0]]), base, direction)
    diagonal = directional_loss(torch.tensor([[2.0, 2.0]]), base, direction)
    assert float(same) == pytest.approx(0.0) and float(opposite) == pytest.approx(2.0)
    assert float(diagonal) == pytest.approx(1 - 0.5**0.5)


def test_directional_loss_stays_finite_and_directed_at_zero_image_change() -> None:
    stylised = torch.ones(1, 2, requires_grad=True)
    loss = directional_loss(stylised, torch.ones(1, 2), torch.tensor([0.0, 1.0]))
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert stylised.grad is not None
    assert stylised.grad[0].tolist() == pytest.approx([0.0, -1 / 0.05])


def test_probing_scores_every_style_layer_and_leaves_the_generator_unchanged(
    clip: ClipGuide,
) -> None:
    generator, loss_fn = _setup(clip)
    before = _snapshot(generator)
    scores = score_layers(generator, loss_fn, probe_steps=2)
    assert set(scores) == set(style_layer_names(generator))
    assert all(score >= 0 for score in scores.values()) and max(scores.values()) > 0
    after = _snapshot(generator)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in generator.parameters())


def test_selection_returns_the_top_scoring_layers(clip: ClipGuide) -> None:
    generator, loss_fn = _setup(clip)
    scores = score_layers(generator, loss_fn, probe_steps=2)
    layers = select_layers(generator, loss_fn, top_k=3, probe_steps=2)
    assert layers == sorted(scores, key=scores.__getitem__, reverse=True)[:3]


def test_every_style_adapts_the_whole_finish_and_the_top_scoring_others(clip: ClipGuide) -> None:
    """Ranked with the others, the finish's zero last convolution always came first (an
    infinite relative change) and the two before it only sometimes: it is adapted whole."""
    generator, loss_fn = _setup(clip, finish=4)
    finish = ["finish.inner", "finish.wide", "finish.out"]
    others = [name for name in style_layer_names(generator) if name not in finish]
    scores = score_layers(generator, loss_fn, probe_steps=2, candidates=others)
    layers = select_layers(generator, loss_fn, top_k=2, probe_steps=2)
    assert layers == finish + sorted(scores, key=scores.__getitem__, reverse=True)[:2]
    delta = adapt_style(generator, loss_fn, layers, steps=5, lr=0.01, prompt="watercolor")
    assert float(delta.deltas["finish.out.weight"].abs().max()) > 0


def test_every_style_adapts_the_whole_reference_style_too(clip: ClipGuide) -> None:
    generator, loss_fn = _setup(clip, finish=4, reference=4)
    own = reference_style_layer_names(generator) + ["finish.inner", "finish.wide", "finish.out"]
    others = [name for name in style_layer_names(generator) if name not in own]
    scores = score_layers(generator, loss_fn, probe_steps=2, candidates=others)
    layers = select_layers(generator, loss_fn, top_k=2, probe_steps=2)
    assert layers == own + sorted(scores, key=scores.__getitem__, reverse=True)[:2]
    delta = adapt_style(generator, loss_fn, layers, steps=5, lr=0.01, prompt="watercolor")
    assert float(delta.deltas["restyle.out.weight"].abs().max()) > 0


def test_adaptation_changes_only_selected_layers_and_lowers_the_clip_loss(
    clip: ClipGuide,
) -> None:
    generator, loss_fn = _setup(clip)
    layers = select_layers(generator, loss_fn, top_k=3, probe_steps=2)
    before = _snapshot(generator)
    with torch.no_grad():
        loss_before = float(loss_fn())
    delta = adapt_style(generator, loss_fn, layers, steps=25, lr=0.01, prompt="watercolor")
    assert all(torch.equal(before[k], v) for k, v in _snapshot(generator).items())
    selected = {f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias")}
    assert set(delta.deltas) == selected & set(before)
    assert all(float(t.abs().max()) > 0 for t in delta.deltas.values())
    with delta.applied(generator):
        changed = {k for k, v in _snapshot(generator).items() if not torch.equal(before[k], v)}
        with torch.no_grad():
            loss_after = float(loss_fn())
    assert changed == set(delta.deltas)
    assert loss_after < loss_before - 0.2, (loss_before, loss_after)


def test_bad_arguments_are_refused(clip: ClipGuide) -> None:
    generator, loss_fn = _setup(clip)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        select_layers(generator, loss_fn, top_k=0, probe_steps=1)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        adapt_style(generator, loss_fn, ["nope"], steps=1, lr=0.1)
    with pytest.raises(ValueError, match="style loss is nan at step 0"):
        adapt_style(generator, lambda: torch.tensor(float("nan")), ["final"], steps=1, lr=0.1)


def test_adaptation_stops_when_asked_and_leaves_the_generator_unchanged(
    clip: ClipGuide,
) -> None:
    generator, loss_fn = _setup(clip)
    before = _snapshot(generator)
    calls = []

    def stop_after_three() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(AdaptationCancelled, match="cancelled"):
        adapt_style(generator, loss_fn, ["final"], steps=10, lr=0.1, should_stop=stop_after_three)
    assert len(calls) == 4
    assert all(torch.equal(before[k], v) for k, v in _snapshot(generator).items())


def _exemplars(count: int = 3, size: int = 32) -> torch.Tensor:
    """Nx3xSxS style pictures unlike the random source: saturated red-orange stripes."""
    stripes = (torch.arange(size) // 4 % 2).float().view(1, 1, 1, size)
    red = torch.tensor([0.9, 0.3, 0.1]).view(1, 3, 1, 1)
    return (red * (0.6 + 0.4 * stripes)).expand(count, 3, size, size).contiguous()


def test_structure_loss_is_the_mean_keypoint_distance() -> None:
    kp = torch.rand(2, 10, 2)
    assert float(structure_loss(kp, kp)) == 0.0
    assert float(structure_loss(kp + 0.1, kp)) == pytest.approx(0.1, abs=1e-6)


def test_gram_matrix_and_feature_statistics_are_zero_on_their_own_targets() -> None:
    features = [torch.rand(2, 4, 8, 8), torch.rand(2, 6, 4, 4)]
    assert gram_matrix(features[0]).shape == (2, 4, 4)
    ones = torch.ones(1, 2, 3, 3)
    assert gram_matrix(ones)[0].flatten().tolist() == pytest.approx([0.5] * 4)
    mean, gram = feature_statistics_loss(features, feature_statistics(features))
    assert float(mean) == 0.0 and float(gram) == 0.0
    mean, gram = feature_statistics_loss([f * 2 for f in features], feature_statistics(features))
    assert float(mean) == pytest.approx(1.0) and float(gram) == pytest.approx(9.0)


def test_colour_distribution_loss_compares_palettes_not_layouts() -> None:
    projections = torch.eye(3)
    images = torch.rand(1, 3, 8, 8)
    shuffled = images.flatten(2)[..., torch.randperm(64)].view(1, 3, 8, 8)
    target = colour_quantiles(images, projections)
    assert float(colour_distribution_loss(shuffled, target, projections)) == pytest.approx(0.0)
    brighter = colour_distribution_loss((images + 0.1).clamp(0, 1), target, projections)
    assert 0.05 < float(brighter) <= 0.1 + 1e-6


def test_low_frequency_loss_ignores_palette_but_sees_the_layout() -> None:
    ramp = torch.linspace(0, 1, 32)
    plain = torch.stack(
        [ramp.view(1, 32) * ramp.view(32, 1), ramp.expand(32, 32), 1 - ramp.expand(32, 32)]
    ).unsqueeze(0)
    assert float(low_frequency_loss(plain * 0.5 + 0.2, plain)) == pytest.approx(0.0, abs=1e-2)
    assert float(low_frequency_loss(plain.flip(-1), plain)) > 0.3


def _adapt_to_exemplars(
    weights: ExemplarWeights, clip: ClipGuide | None = None
) -> tuple[dict, dict, float, StyleDelta]:
    """(terms before, terms after, max |delta|, delta) of 20 steps on the tiny preset."""
    config = get_preset("tiny")
    generator, detector = OcclusionAwareGenerator(config).eval(), KPDetector(config).eval()
    source = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        kp = detector(source)
    terms: dict[str, float] = {}
    loss_fn = exemplar_style_loss(
        generator, detector, _exemplars(), source, kp, weights=weights, terms=terms, clip=clip
    )
    with torch.no_grad():
        loss_fn()
    before = dict(terms)
    layers = select_layers(generator, loss_fn, top_k=3, probe_steps=2)
    delta = adapt_style(generator, loss_fn, layers, steps=20, lr=0.01, prompt="stripes")
    with delta.applied(generator), torch.no_grad():
        loss_fn()
    bound = max(float(t.abs().max()) for t in delta.deltas.values())
    return before, dict(terms), bound, delta


def test_exemplar_adaptation_lowers_the_style_terms_with_a_bounded_delta() -> None:
    before, after, bound, delta = _adapt_to_exemplars(
        ExemplarWeights(structure=0.0, low_frequency=0.0)
    )
    assert before["structure"] == 0.0 and before["low_frequency"] == 0.0
    assert after["colour"] < 0.6 * before["colour"], (before, after)
    assert after["feature_mean"] < 0.5 * before["feature_mean"], (before, after)
    assert after["feature_gram"] < 0.5 * before["feature_gram"], (before, after)
    assert bound <= 20 * 0.01 * 1.01  # Adam moves a weight at most ~lr per step
    assert delta.layers and set(delta.deltas)


def test_exemplar_adaptation_keeps_the_keypoint_structure() -> None:
    _, free, _, _ = _adapt_to_exemplars(ExemplarWeights(structure=0.0, low_frequency=0.0))
    before, held, _, _ = _adapt_to_exemplars(ExemplarWeights())
    # Keypoints of the styled render stay within 0.5 px (at 32 px) of the unstyled render's.
    assert held["structure"] * 32 / 2 < 0.5, held
    assert held["structure"] < 0.5 * free["structure"], (free, held)
    assert held["colour"] < before["colour"], (before, held)
    assert "clip_image" not in held  # no CLIP, no image prompt


def test_the_image_prompt_direction_runs_from_the_neutral_renders_to_the_exemplars(
    clip: ClipGuide,
) -> None:
    exemplars, neutral = _exemplars(), torch.rand(2, 3, 32, 32)
    neutral_embeddings = clip.encode_image(neutral)
    direction = clip_image_direction(clip, exemplars, neutral_embeddings)
    expected = clip.encode_image(exemplars).mean(0) - neutral_embeddings.mean(0)
    assert torch.allclose(direction, expected) and not direction.requires_grad


def test_with_clip_the_exemplars_are_also_an_image_prompt_the_adaptation_follows(
    clip: ClipGuide,
) -> None:
    only_clip = ExemplarWeights(0.0, 0.0, 0.0, 0.0, 0.0, clip_image=1.0)
    before, after, bound, _ = _adapt_to_exemplars(only_clip, clip)
    assert 0.9 < before["clip_image"] <= 1.0 + 1e-6  # a directional loss, at dI = 0
    assert after["clip_image"] < before["clip_image"] - 0.05, (before, after)
    assert bound <= 20 * 0.01 * 1.01


STEPS = 4


def test_the_text_path_runs_on_a_real_clip_architecture_with_random_weights() -> None:
    """ViT-B-32 as the default CLIP is built (random weights: none can be downloaded here):
    probing, selection and adaptation run end to end, the delta is bounded and, with the
    structure term, the styled render's keypoints stay with the unstyled one's (without it, 2
    steps moved them 1.3 px at 32 px: random CLIP gradients point anywhere)."""
    clip = random_clip(DEFAULT_CLIP_MODEL)
    assert clip.image_size == (224, 224) and clip.encode_text("a comic").shape == (512,)
    config = get_preset("tiny")
    generator, detector = OcclusionAwareGenerator(config).eval(), KPDetector(config).eval()
    source = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        kp = detector(source)
    prompt = "a zombie with green skin"
    loss_fn = clip_style_loss(generator, clip, prompt, source, kp, structure_detector=detector)
    layers = select_layers(generator, loss_fn, top_k=2, probe_steps=1)
    delta = adapt_style(generator, loss_fn, layers, steps=STEPS, lr=0.01, prompt="zombie")
    assert len(layers) == 2 and set(delta.layers) == set(layers)
    assert all(torch.isfinite(t).all() for t in delta.deltas.values())
    assert max(float(t.abs().max()) for t in delta.deltas.values()) <= STEPS * 0.01 * 1.01
    with torch.no_grad():
        motion = generator.dense_motion_network(source, kp, kp)
        plain = generator.decode(generator.encode_source(source), motion)
        with delta.applied(generator):
            styled = generator.decode(generator.encode_source(source), motion)
        moved_px = structure_loss(detector(styled)["value"], detector(plain)["value"]) * 32 / 2
    assert float(moved_px) < 0.5
