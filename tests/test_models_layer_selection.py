import pytest
import torch

from models.config import get_preset
from models.generator import OcclusionAwareGenerator, style_layer_names
from models.keypoint_detector import KPDetector
from models.layer_selection import (
    AdaptationCancelled,
    adapt_style,
    clip_style_loss,
    directional_loss,
    score_layers,
    select_layers,
)
from models.text_encoder import ClipGuide, tiny_clip
from tests.models_helpers import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def clip() -> ClipGuide:
    return tiny_clip(seed=0)


def _setup(clip: ClipGuide, prompt: str = "a watercolor painting"):
    config = get_preset("tiny")
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
