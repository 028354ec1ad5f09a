import itertools

import numpy as np
import pytest
import torch

from models.checkpoint import build_models
from models.config import get_preset
from tests.models_helpers import single_thread  # noqa: F401
from training.structure import (
    COLOUR_VARIANTS,
    distill_structure_detector,
    restyle,
    structure_errors,
)
from training.styles import CLASSICAL_STYLES

pytestmark = pytest.mark.usefixtures("single_thread")


def _faces(count: int, seed: int) -> torch.Tensor:
    """Smooth random pictures (Bx3x32x32 in [0, 1]): edges for the recipes to draw on."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(count, 3, 32, 32, generator=generator)
    return torch.nn.functional.avg_pool2d(noise, 5, 1, 2)


@pytest.fixture()
def teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_models(get_preset("tiny")).kp_detector.eval()


def test_distillation_finds_the_photographs_keypoints_through_a_restyling(teacher) -> None:  # type: ignore[no-untyped-def]
    """On pictures it never saw: with its colours mixed the teacher itself moves its keypoints
    (0.83 px here); the distilled detector moves them less, and the teacher is left as it was."""
    before = {key: value.clone() for key, value in teacher.state_dict().items()}
    training = _faces(16, seed=1)
    batches = itertools.cycle([training[:8], training[8:]])
    losses: list[float] = []
    student = distill_structure_detector(
        teacher,
        batches,
        steps=100,
        lr=1e-3,
        restylings=("colour-mix",),
        progress=lambda step, loss: losses.append(loss),
    )
    assert len(losses) == 100 and np.isfinite(losses).all()
    unseen = _faces(8, seed=2)
    own = structure_errors(teacher, teacher, unseen)
    distilled = structure_errors(student, teacher, unseen)
    assert own["photograph"] == 0.0
    assert distilled["colour-mix"] < 0.5 * own["colour-mix"], (own, distilled)
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)
    assert not any(p.requires_grad for p in student.parameters())


def test_distillation_goes_on_from_a_given_start_and_leaves_it_unchanged(teacher) -> None:  # type: ignore[no-untyped-def]
    training = _faces(8, seed=1)
    first = distill_structure_detector(teacher, itertools.repeat(training), steps=5, lr=1e-3)
    kept = {key: value.clone() for key, value in first.state_dict().items()}
    same = distill_structure_detector(teacher, [], steps=0, start=first)
    further = distill_structure_detector(
        teacher, itertools.repeat(training), steps=1, lr=1e-5, start=first
    )
    for key, value in first.state_dict().items():
        torch.testing.assert_close(value, kept[key], msg=key)
        torch.testing.assert_close(same.state_dict()[key], value, msg=key)
    # one tiny step from the start: near it, not back at the teacher
    moved = (further.kp.weight - first.kp.weight).abs().max()
    assert 0 < moved < 0.1 * (first.kp.weight - teacher.kp.weight).abs().max()


def test_errors_are_given_for_the_photograph_and_every_restyling(teacher) -> None:  # type: ignore[no-untyped-def]
    errors = structure_errors(teacher, teacher, _faces(2, seed=3))
    assert list(errors) == ["photograph", *CLASSICAL_STYLES, *COLOUR_VARIANTS]
    assert errors["photograph"] == 0.0 and errors["grey"] > 0.0
    only = structure_errors(teacher, teacher, _faces(2, seed=3), restylings=("grey",))
    assert only == {"photograph": 0.0, "grey": errors["grey"]}


def test_grey_is_the_luma_in_every_channel_and_recipes_are_the_classical_styles() -> None:
    images = _faces(2, seed=4)
    rng = np.random.default_rng(0)
    grey = restyle(images, "grey", rng)
    luma = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    for channel in range(3):
        torch.testing.assert_close(grey[:, channel], luma)
    poster = restyle(images, "posterise", rng)
    assert len(torch.unique(poster)) <= 5
    sketch = restyle(images, "sketch", rng)
    assert torch.equal(sketch[:, 0], sketch[:, 1])  # the pencil recipe is grey


def test_bad_requests_are_refused(teacher) -> None:  # type: ignore[no-untyped-def]
    images = _faces(2, seed=5)
    with pytest.raises(ValueError, match="unknown restyling 'oil'; known: sketch"):
        restyle(images, "oil", np.random.default_rng(0))
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        distill_structure_detector(teacher, [images], steps=-1)
    with pytest.raises(ValueError, match="no restylings"):
        distill_structure_detector(teacher, [images], steps=1, restylings=())
    with pytest.raises(ValueError, match="needs >= 2 frames, got 1"):
        distill_structure_detector(teacher, [images[:1]], steps=1)
