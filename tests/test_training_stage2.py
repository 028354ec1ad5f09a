import copy
import dataclasses

import pytest
import torch

from models.checkpoint import build_models
from models.config import get_preset
from models.layer_selection import structure_loss
from training.options import Stage2Weights
from training.stage2 import (
    fit_finish,
    fit_reference,
    make_style_batches,
    reference_examples,
    render_styles,
    style_loss,
    stylize_batch,
    train_style,
)
from training.styles import Palette


@pytest.fixture()
def setup() -> tuple[torch.nn.Module, torch.nn.Module, list]:
    torch.manual_seed(0)
    models = build_models(get_preset("tiny"))
    # Smooth random "faces": stylisation needs some structure to draw edges on.
    images = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 32, 32), 5, 1, 2)
    pairs = [(images[:2], images[2:]), (images[2:], images[:2])]
    batches = make_style_batches(
        pairs, "cel", models.kp_detector, models.generator, models.kp_detector
    )
    return models.generator, models.kp_detector, batches


def test_targets_are_the_classically_stylised_driving_frames(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, batches = setup
    torch.testing.assert_close(batches[0].target, stylize_batch(batches[0].driving, "cel"))
    assert not torch.allclose(batches[0].target, batches[0].driving)
    # the finish's target: the same recipe of the unstyled render
    torch.testing.assert_close(batches[0].plain_target, stylize_batch(batches[0].plain, "cel"))
    assert not torch.allclose(batches[0].plain_target, batches[0].target)


def test_adaptation_lowers_the_style_loss_and_touches_only_selected_layers(setup) -> None:  # type: ignore[no-untyped-def]
    generator, kp_detector, batches = setup
    before = {k: v.clone() for k, v in generator.state_dict().items()}

    def mean_loss() -> float:
        loss_fn = style_loss(generator, kp_detector, batches, Stage2Weights())
        with torch.no_grad():
            return sum(float(loss_fn()) for _ in batches) / len(batches)

    start = mean_loss()
    delta, terms = train_style(
        "cel",
        generator,
        kp_detector,
        kp_detector,
        batches,
        top_k=2,
        probe_steps=1,
        steps=25,
        lr=0.01,
    )
    assert {"image_l1", "image_ms_ssim", "structure"} <= set(terms)
    # The generator is left unchanged; the style lives in the delta only.
    for name, value in generator.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)
    assert len(delta.layers) == 2
    assert all(name.rsplit(".", 1)[0] in delta.layers for name in delta.deltas)
    with delta.applied(generator):
        styled = mean_loss()
    assert styled < start


def test_the_structure_term_holds_the_keypoints_of_the_unstyled_render(setup) -> None:  # type: ignore[no-untyped-def]
    """What bench stylesheet measures: before any delta the styled render is the unstyled one,
    so the term is zero (the driving frame's own keypoints are elsewhere)."""
    generator, kp_detector, batches = setup
    terms: dict[str, float] = {}
    loss_fn = style_loss(generator, kp_detector, batches, Stage2Weights(), terms=terms)
    with torch.no_grad():
        loss_fn()
    assert terms["structure"] == 0.0
    assert float(structure_loss(batches[0].kp_plain, batches[0].kp_driving["value"])) > 1e-3


def test_render_styles_gives_one_column_per_style(setup) -> None:  # type: ignore[no-untyped-def]
    generator, kp_detector, batches = setup
    delta, _ = train_style(
        "cel",
        generator,
        kp_detector,
        kp_detector,
        batches,
        top_k=1,
        probe_steps=1,
        steps=2,
        lr=0.01,
    )
    batch = batches[0]
    columns = render_styles(
        generator, {"cel": delta}, batch.source, batch.kp_source, batch.kp_driving
    )
    assert [name for name, _ in columns] == ["cel"]
    assert columns[0][1].shape == batch.source.shape


def test_unknown_style_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    generator, kp_detector, batches = setup
    with pytest.raises(ValueError, match="unknown built-in style 'oil'"):
        train_style("oil", generator, kp_detector, kp_detector, batches, 1, 1, 1, 0.01)


def test_an_exemplar_style_trains_on_its_recipe_in_its_pictures_palette(setup) -> None:  # type: ignore[no-untyped-def]
    generator, kp_detector, _ = setup
    images = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 32, 32), 5, 1, 2)
    orange = Palette.of(torch.tensor([0.95, 0.55, 0.15]).view(1, 3, 1, 1).expand(1, 3, 4, 4))
    batches = make_style_batches(
        [(images[:2], images[2:])], "pixar", kp_detector, generator, kp_detector, orange
    )
    torch.testing.assert_close(batches[0].target, stylize_batch(images[2:], "pixar", orange))
    delta, terms = train_style("pixar", generator, kp_detector, kp_detector, batches, 2, 1, 3, 1e-3)
    assert delta.prompt == "pixar" and len(delta.layers) == 2
    assert {"image_l1", "image_ms_ssim", "structure"} == set(terms)
    assert max(float(t.abs().max()) for t in delta.deltas.values()) <= 3 * 1e-3 * 1.01


def test_an_exemplar_style_without_its_palette_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    generator, kp_detector, _ = setup
    images = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="'pixar' takes its colours from its pictures"):
        make_style_batches([(images, images)], "pixar", kp_detector, generator, kp_detector)


def test_the_structure_term_is_measured_by_the_structure_detector(setup) -> None:  # type: ignore[no-untyped-def]
    """kp_plain comes from the structure detector (not the motion's keypoint detector), and the
    structure term compares the styled render's keypoints by the same detector."""
    generator, kp_detector, batches = setup
    structure = copy.deepcopy(kp_detector)
    with torch.no_grad():
        structure.kp.weight.add_(0.05 * torch.randn_like(structure.kp.weight))
    pairs = [(batches[0].source, batches[0].driving)]
    [batch] = make_style_batches(pairs, "cel", kp_detector, generator, structure)
    with torch.no_grad():
        torch.testing.assert_close(batch.kp_plain, structure(batch.plain)["value"])
        moved = (batch.kp_plain - kp_detector(batch.plain)["value"]).abs().mean()
        assert moved > 1e-3
    terms: dict[str, float] = {}
    with torch.no_grad():
        style_loss(generator, structure, [batch], Stage2Weights(), terms=terms)()
    assert terms["structure"] == 0.0  # the same detector on the same (unstyled) render
    with torch.no_grad():
        style_loss(generator, kp_detector, [batch], Stage2Weights(), terms=terms)()
    assert terms["structure"] > 1e-3


def _finished_tiny(reference: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, list]:
    """The tiny preset with a 4-channel style finish (and a reference style of ``reference``
    channels), and cel batches on smooth random faces."""
    torch.manual_seed(0)
    tiny = get_preset("tiny")
    generator = dataclasses.replace(
        tiny.generator, style_finish_channels=4, style_reference_channels=reference
    )
    config = dataclasses.replace(tiny, generator=generator)
    models = build_models(config)
    images = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 32, 32), 5, 1, 2)
    batches = make_style_batches(
        [(images[:2], images[2:])], "cel", models.kp_detector, models.generator, models.kp_detector
    )
    return models.generator, models.kp_detector, batches


def test_the_finish_fit_moves_only_the_finish_toward_the_recipe_of_the_render() -> None:
    generator, _, batches = _finished_tiny()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    batch = batches[0]
    # a target of the real frame's recipe would not do: the render's is what is fitted
    batch.target.copy_(1 - batch.plain_target)

    def distance() -> float:
        with torch.no_grad():
            return float((generator.finish(batch.plain) - batch.plain_target).abs().mean())

    start = distance()
    delta = fit_finish(generator, batches, steps=60, lr=1e-2)
    assert set(delta.layers) == {"finish.inner", "finish.wide", "finish.out"}
    assert all(key.startswith("finish.") for key in delta.deltas)
    for key, value in generator.state_dict().items():
        torch.testing.assert_close(value, before[key])  # the generator is left as it was
    with delta.applied(generator):
        assert distance() < 0.9 * start


def test_a_style_with_a_finish_fit_holds_both_deltas() -> None:
    generator, kp_detector, batches = _finished_tiny()
    delta, _ = train_style(
        "cel", generator, kp_detector, kp_detector, batches, 1, 1, 2, 1e-3, finish_steps=5
    )
    fitted = fit_finish(generator, batches, steps=5, lr=3e-3)
    assert {"finish.inner", "finish.wide", "finish.out"} <= set(delta.layers)
    # The finish's change is the fit plus the joint steps (at most 2 x lr each) on top of it.
    change = delta.deltas["finish.out.weight"] - fitted.deltas["finish.out.weight"]
    assert float(change.abs().max()) <= 2 * 1e-3 * 1.01
    assert float(delta.deltas["finish.out.weight"].abs().max()) > 5e-3


def test_a_generator_without_a_finish_has_none_to_fit(setup) -> None:  # type: ignore[no-untyped-def]
    generator, _, batches = setup
    with pytest.raises(ValueError, match="no style finish to fit"):
        fit_finish(generator, batches, steps=1, lr=1e-3)
    with pytest.raises(ValueError, match="no reference style to fit"):
        fit_reference(generator, [(batches[0].driving, batches[0].target)], steps=1, lr=1e-3)


def test_the_reference_fit_moves_only_the_reference_style_toward_the_recipe_of_real_frames() -> (
    None
):
    generator, _, batches = _finished_tiny(reference=4)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    frames = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 32, 32), 5, 1, 2)
    [(_, target)] = examples = reference_examples([frames], "cel")
    torch.testing.assert_close(target, stylize_batch(frames, "cel"))

    def distance() -> float:
        with torch.no_grad():
            return float((generator.restyle(frames) - target).abs().mean())

    start = distance()
    delta = fit_reference(generator, examples, steps=60, lr=1e-2)
    assert {key.split(".")[0] for key in delta.deltas} == {"restyle"}
    assert len(delta.layers) == 8
    for key, value in generator.state_dict().items():
        torch.testing.assert_close(value, before[key])  # the generator is left as it was
    with delta.applied(generator):
        assert distance() < 0.8 * start


def test_a_style_with_a_reference_fit_holds_it_and_refuses_a_finish_fit_beside_it() -> None:
    generator, kp_detector, batches = _finished_tiny(reference=4)
    delta, _ = train_style(
        "cel", generator, kp_detector, kp_detector, batches, 1, 1, 2, 1e-3, reference_steps=5
    )
    # without frames of its own, the fit uses the batches' driving frames and their targets
    fitted = fit_reference(generator, [(b.driving, b.target) for b in batches], steps=5, lr=3e-3)
    assert {"restyle.out", "finish.out"} <= set(delta.layers)
    change = delta.deltas["restyle.out.weight"] - fitted.deltas["restyle.out.weight"]
    assert float(change.abs().max()) <= 2 * 1e-3 * 1.01
    assert float(delta.deltas["restyle.out.weight"].abs().max()) > 5e-3
    with pytest.raises(ValueError, match="not both"):
        train_style(
            "cel",
            generator,
            kp_detector,
            kp_detector,
            batches,
            1,
            1,
            2,
            1e-3,
            finish_steps=5,
            reference_steps=5,
        )
