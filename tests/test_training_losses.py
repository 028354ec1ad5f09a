from pathlib import Path

import pytest
import torch

from training.losses import (
    RandomWarp,
    VGGPerceptualLoss,
    clip_global_loss,
    equivariance_losses,
    ms_ssim_loss,
    ms_ssim_value,
    multiscale_l1,
)


def blob_keypoint(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A keypoint detector that is exactly right: soft-argmax of the brightness (1 keypoint)."""
    batch, _, height, width = images.shape
    heat = (images[:, 0].reshape(batch, -1) * 300).softmax(-1).reshape(batch, height, width)
    xs, ys = torch.linspace(-1, 1, width), torch.linspace(-1, 1, height)
    kp = torch.stack([(heat.sum(1) * xs).sum(-1), (heat.sum(2) * ys).sum(-1)], -1)
    return kp.unsqueeze(1), torch.eye(2).expand(batch, 1, 2, 2)


def blob(x: float, y: float, size: int = 64) -> torch.Tensor:
    line = torch.linspace(-1, 1, size)
    gy, gx = torch.meshgrid(line, line, indexing="ij")
    return torch.exp(-((gx - x) ** 2 + (gy - y) ** 2) / 0.01).expand(1, 3, size, size)


def test_reconstruction_losses_are_zero_for_equal_images_and_grow_with_error() -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64)
    assert float(multiscale_l1(image, image)) == 0.0
    assert float(multiscale_l1(torch.zeros_like(image), torch.full_like(image, 0.5))) == 0.5
    assert float(ms_ssim_loss(image, image)) == pytest.approx(0.0, abs=1e-5)
    noisy = (image + 0.2 * torch.randn_like(image)).clamp(0, 1)
    assert (
        0.0 < float(ms_ssim_loss(image, noisy)) < float(ms_ssim_loss(image, torch.rand_like(image)))
    )


@pytest.mark.parametrize("size", [32, 64, 128])
def test_ms_ssim_works_at_every_preset_size(size: int) -> None:
    image = torch.rand(1, 3, size, size)
    assert float(ms_ssim_value(image, image)) == pytest.approx(1.0, abs=1e-5)


def test_identity_warp_changes_nothing() -> None:
    warp = RandomWarp(1, sigma_affine=0.0, sigma_tps=0.0)
    image = blob(0.2, -0.1)
    torch.testing.assert_close(warp.warp_image(image), image, atol=1e-5, rtol=0)
    points = torch.tensor([[[0.3, -0.5]]])
    torch.testing.assert_close(warp.points(points), points, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        warp.jacobian(points), torch.eye(2).view(1, 1, 2, 2), atol=1e-3, rtol=0
    )


def test_warp_of_image_and_of_points_agree() -> None:
    """A perfect detector has zero keypoint equivariance loss under a real random warp."""
    torch.manual_seed(0)
    warp = RandomWarp(1, sigma_affine=0.1, sigma_tps=0.03)
    image = blob(0.2, -0.1, size=128)
    kp, jac = blob_keypoint(image)
    moved, _ = blob_keypoint(warp.warp_image(image))
    displacement = float((moved - kp).abs().mean())
    assert displacement > 0.03  # the warp really moved the blob
    value_loss, jacobian_loss = equivariance_losses(blob_keypoint, image, kp, jac, warp)
    # Residual only from soft-argmax blur; the inverse convention is far off.
    assert float(value_loss) < 0.3 * displacement
    assert float((moved - warp.points(kp)).abs().mean()) > displacement
    assert jacobian_loss is not None


def test_jacobian_of_an_affine_warp_is_its_matrix() -> None:
    torch.manual_seed(2)
    warp = RandomWarp(1, sigma_affine=0.1, sigma_tps=0.0)
    points = torch.tensor([[[0.0, 0.0], [0.5, -0.3]]])
    jacobians = warp.jacobian(points)
    torch.testing.assert_close(jacobians[0, 0], jacobians[0, 1], atol=1e-3, rtol=0)
    assert float((jacobians[0, 0] - torch.eye(2)).abs().max()) > 1e-3


def test_clip_global_loss() -> None:
    text = torch.nn.functional.normalize(torch.randn(8), dim=0)
    assert float(clip_global_loss(text.expand(3, 8), text)) == pytest.approx(0.0, abs=1e-6)
    assert float(clip_global_loss(-text.expand(3, 8), text)) == pytest.approx(2.0, abs=1e-6)


def test_vgg_weights_must_be_a_local_vgg19_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        VGGPerceptualLoss(tmp_path / "vgg19.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read VGG weights"):
        VGGPerceptualLoss(broken)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="not a torchvision vgg19 state dict"):
        VGGPerceptualLoss(wrong)
