import pytest
import torch

from tests.models_helpers import single_thread  # noqa: F401
from training.discriminator import (
    DiscriminatorConfig,
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = DiscriminatorConfig(block_expansion=4, max_features=8, num_blocks=2, scales=(1.0, 0.5))


def test_scores_one_patch_map_per_scale() -> None:
    out = MultiScaleDiscriminator(SMALL)(torch.rand(2, 3, 32, 32))
    assert list(out) == ["scale_1", "scale_0_5"]
    assert out["scale_1"][-1].shape == (2, 1, 8, 8)  # two stride-2 blocks: 32 -> 8 patches
    assert out["scale_0_5"][-1].shape == (2, 1, 4, 4)


def test_least_squares_losses_have_their_textbook_values() -> None:
    ones = {"s": [torch.zeros(1, 2, 2, 2), torch.ones(1, 1, 2, 2)]}
    zeros = {"s": [torch.full((1, 2, 2, 2), 3.0), torch.zeros(1, 1, 2, 2)]}
    assert float(discriminator_loss(real=ones, fake=zeros)) == 0.0
    assert float(discriminator_loss(real=zeros, fake=ones)) == 2.0
    assert float(generator_adversarial_loss(ones)) == 0.0
    assert float(generator_adversarial_loss(zeros)) == 1.0
    assert float(feature_matching_loss(real=ones, fake=zeros)) == 3.0
