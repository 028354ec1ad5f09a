import pytest
import torch

from models.checkpoint import build_models
from models.config import get_preset
from tests.models_helpers import single_thread  # noqa: F401
from training.discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from training.stage1 import ReconstructionModel, discriminator_step

pytestmark = pytest.mark.usefixtures("single_thread")


def _setup() -> tuple[ReconstructionModel, MultiScaleDiscriminator]:
    models = build_models(get_preset("tiny"))
    model = ReconstructionModel(models.kp_detector.train(), models.generator.train())
    config = DiscriminatorConfig(block_expansion=4, max_features=8, num_blocks=2)
    return model, MultiScaleDiscriminator(config)


def test_the_discriminator_step_changes_only_the_discriminators_weights() -> None:
    model, discriminator = _setup()
    source, driving = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    losses, prediction = model(source, driving, discriminator)
    assert {"adversarial", "feature_matching"} <= set(losses)
    sum(losses.values()).backward()  # the generator step's backward, as the trainer runs it
    assert all(p.grad is None for p in discriminator.parameters())
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_disc = {k: v.clone() for k, v in discriminator.state_dict().items()}
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    loss = discriminator_step(discriminator, optimizer, driving, prediction)
    assert float(loss) > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before_model.items())
    changed = [
        k for k, v in before_disc.items() if not torch.equal(v, discriminator.state_dict()[k])
    ]
    assert any(k.endswith("weight_orig") for k in changed), changed


def test_without_a_discriminator_there_are_no_gan_terms() -> None:
    model, _ = _setup()
    losses, _ = model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert set(losses) == {"l1", "ms_ssim", "equivariance_value", "equivariance_jacobian"}
