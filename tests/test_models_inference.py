"""InferenceWrapper: networks loaded once, styled views that share every untouched tensor."""

from __future__ import annotations

import pytest
import torch

from models.checkpoint import build_models
from models.config import get_preset
from models.inference import InferenceWrapper
from models.keypoint_detector import KPDetector
from models.style_delta import StyleDelta, weights_fingerprint
from tests.models_helpers import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


def _wrapper(half: bool | None = None, max_styled_views: int = 32) -> InferenceWrapper:
    models = build_models(get_preset("tiny"))
    return InferenceWrapper(
        "tiny", device="cpu", models=models, half=half, max_styled_views=max_styled_views
    )


def _delta(wrapper: InferenceWrapper, name: str = "final.weight", scale: float = 1.0) -> StyleDelta:
    parameter = dict(wrapper.generator.named_parameters())[name]
    change = scale * torch.ones(parameter.shape)
    return StyleDelta(name, (name.rpartition(".")[0],), {name: change})


def test_channels_last_is_the_default_on_cpu() -> None:
    wrapper = _wrapper()
    assert wrapper.channels_last and wrapper.dtype == torch.float32
    weight = wrapper.generator.final.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()  # really converted, not a 1x1 kernel that is both


def test_a_styled_view_shares_every_untouched_tensor_and_leaves_the_base_alone() -> None:
    wrapper = _wrapper()
    before = weights_fingerprint(wrapper.generator)
    delta = _delta(wrapper, scale=0.25)
    view, _decode = wrapper.styled(delta)
    base = dict(wrapper.generator.named_parameters())
    styled = dict(view.named_parameters())
    shared = [name for name in base if styled[name] is base[name]]
    assert sorted(set(base) - set(shared)) == ["final.weight"]
    assert torch.equal(styled["final.weight"], base["final.weight"] + 0.25)
    assert styled["final.weight"].is_contiguous(memory_format=torch.channels_last)
    assert weights_fingerprint(wrapper.generator) == before
    assert wrapper.styled(delta)[0] is view  # built once per style
    assert wrapper.styled(None)[0] is wrapper.generator


def test_styled_views_are_bounded_least_recently_used_first_out() -> None:
    wrapper = _wrapper(max_styled_views=2)
    first, second, third = (_delta(wrapper, scale=s) for s in (0.1, 0.2, 0.3))
    view = wrapper.styled(first)[0]
    wrapper.styled(second)
    wrapper.styled(first)  # now the most recently used
    wrapper.styled(third)  # evicts second
    assert wrapper.styled_views() == 2
    assert wrapper.styled(first)[0] is view


def test_a_delta_that_does_not_fit_is_refused() -> None:
    wrapper = _wrapper()
    wrong = StyleDelta("x", ("final",), {"final.weight": torch.zeros(1, 2)})
    with pytest.raises(ValueError, match="delta for final.weight has shape"):
        wrapper.styled(wrong)
    assert wrapper.styled_views() == 0


def test_the_structure_copy_is_the_checkpoints_structure_detector_when_it_has_one() -> None:
    models = build_models(get_preset("tiny"))
    models.structure_detector = KPDetector(models.config).eval()
    with torch.no_grad():
        models.structure_detector.kp.bias.add_(0.5)
    wrapper = InferenceWrapper("tiny", device="cpu", models=models, half=True)
    _, detector, structure = wrapper.float_copies()
    assert torch.equal(structure.kp.bias, models.structure_detector.kp.bias)
    assert not torch.equal(structure.kp.bias, detector.kp.bias)
    assert structure is not models.structure_detector


def test_float_copies_are_float32_and_independent_of_the_served_weights() -> None:
    wrapper = _wrapper(half=True)
    generator, detector, structure = wrapper.float_copies()
    assert {p.dtype for p in generator.parameters()} == {torch.float32}
    assert {p.dtype for p in detector.parameters()} == {torch.float32}
    # No structure detector in this checkpoint: the keypoint detector measures structure.
    assert {p.dtype for p in structure.parameters()} == {torch.float32}
    torch.testing.assert_close(structure.state_dict(), detector.state_dict())
    served = wrapper.generator.final.weight.detach().clone()
    with torch.no_grad():
        generator.final.weight.add_(1.0)
    assert torch.equal(wrapper.generator.final.weight, served)
    assert served.dtype == torch.float16
