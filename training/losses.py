"""Training losses (first-order-motion-model recipe, no pretrained network by default).

Images are ``Bx3xHxW`` floats in [0, 1]; keypoints ``BxKx2`` in [-1, 1] (x, y, as
``grid_sample``); Jacobians ``BxKx2x2``.

* :func:`multiscale_l1` and :func:`ms_ssim_loss`: reconstruction on an image pyramid;
* :class:`RandomWarp` + :func:`equivariance_losses`: keypoints and Jacobians must follow a
  random affine + thin-plate-spline warp of the frame (kornia solves and applies the TPS);
* :class:`VGGPerceptualLoss`: optional, from a local torchvision VGG19 weights file only;
* :func:`clip_global_loss`: the output as a whole should match the prompt in CLIP space (the
  directional loss is :func:`models.layer_selection.directional_loss`, the keypoint
  structure loss :func:`models.layer_selection.structure_loss`: the receiver adapts with them).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

KeypointFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""image Bx3xHxW -> (keypoints BxKx2, jacobians BxKx2x2)."""

PYRAMID_SCALES = (1.0, 0.5, 0.25, 0.125)


def pyramid(images: torch.Tensor, scales: tuple[float, ...] = PYRAMID_SCALES) -> list[torch.Tensor]:
    """images: Bx3xHxW -> one area-downsampled copy per scale (scale 1 is the input)."""
    return [
        images if scale == 1.0 else F.interpolate(images, scale_factor=scale, mode="area")
        for scale in scales
    ]


def multiscale_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 over the levels of the image pyramid (coarse levels weigh structure)."""
    levels = zip(pyramid(prediction), pyramid(target), strict=True)
    return torch.stack([F.l1_loss(p, t) for p, t in levels]).mean()


def ms_ssim_value(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MS-SSIM over 5 scales (window 7 from 97 px, window 3 below; tiny images upsampled)."""
    from pytorch_msssim import ms_ssim

    # pytorch-msssim needs side > (win_size - 1) * 16 for its 4 downsamplings.
    side = min(prediction.shape[-2:])
    if side <= 32:
        prediction, target = (
            F.interpolate(x, scale_factor=64 / side, mode="bilinear", align_corners=False)
            for x in (prediction, target)
        )
    win_size = 7 if side > 96 else 3
    return ms_ssim(prediction.clamp(0, 1), target, data_range=1.0, win_size=win_size)


def ms_ssim_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM (see :func:`ms_ssim_value`)."""
    return 1.0 - ms_ssim_value(prediction, target)


class RandomWarp:
    """A random smooth warp T: affine plus thin-plate spline on a 5x5 control grid.

    ``warp_image(x)(p) = x(T(p))``; so keypoints of the original frame are T applied to
    keypoints of the warped frame. Parameters follow FOMM (sigma_affine 0.05).
    """

    def __init__(
        self,
        batch: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.02,
        grid_points: int = 5,
        generator: torch.Generator | None = None,
    ) -> None:
        from kornia.geometry.transform import get_tps_transform

        line = torch.linspace(-1.0, 1.0, grid_points)
        grid = torch.stack(torch.meshgrid(line, line, indexing="xy"), dim=-1).reshape(1, -1, 2)
        self.centers = grid.expand(batch, -1, -1).contiguous()
        affine = torch.eye(2, 3).unsqueeze(0) + sigma_affine * torch.randn(
            batch, 2, 3, generator=generator
        )
        moved = self.centers @ affine[:, :, :2].transpose(1, 2) + affine[:, :, 2].unsqueeze(1)
        moved = moved + sigma_tps * torch.randn(moved.shape, generator=generator)
        self.kernel_weights, self.affine_weights = get_tps_transform(self.centers, moved)

    def points(self, points: torch.Tensor) -> torch.Tensor:
        """T applied to points: BxNx2 -> BxNx2."""
        from kornia.geometry.transform import warp_points_tps

        return warp_points_tps(
            points,
            self.centers.to(points),
            self.kernel_weights.to(points),
            self.affine_weights.to(points),
        )

    def jacobian(self, points: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        """dT/dp at points: BxNx2 -> BxNx2x2 (central differences; T is smooth)."""
        columns = []
        for axis in range(2):
            step = torch.zeros(2, dtype=points.dtype, device=points.device)
            step[axis] = eps
            columns.append((self.points(points + step) - self.points(points - step)) / (2 * eps))
        return torch.stack(columns, dim=-1)

    def warp_image(self, images: torch.Tensor) -> torch.Tensor:
        """images: Bx3xHxW -> images sampled at T(p) for every output pixel p."""
        batch, _, height, width = images.shape
        ys = torch.linspace(-1.0, 1.0, height, device=images.device)
        xs = torch.linspace(-1.0, 1.0, width, device=images.device)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(1, -1, 2)
        sample_at = self.points(grid.expand(batch, -1, -1)).reshape(batch, height, width, 2)
        return F.grid_sample(images, sample_at, padding_mode="reflection", align_corners=True)


def equivariance_losses(
    keypoints: KeypointFn,
    images: torch.Tensor,
    kp: torch.Tensor,
    jacobians: torch.Tensor | None,
    warp: RandomWarp,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(keypoint loss, Jacobian loss or None) for ``kp, jacobians = keypoints(images)``.

    Keypoint loss: |kp - T(kp_warped)|. Jacobian loss: |inv(J) (dT J_warped) - I| (FOMM).
    """
    warped_kp, warped_jac = keypoints(warp.warp_image(images))
    value_loss = F.l1_loss(warp.points(warped_kp), kp)
    if jacobians is None:
        return value_loss, None
    mapped = warp.jacobian(warped_kp) @ warped_jac
    product = torch.linalg.inv(jacobians) @ mapped
    eye = torch.eye(2, dtype=product.dtype, device=product.device)
    return value_loss, (product - eye).abs().mean()


class VGGPerceptualLoss(nn.Module):
    """Multi-scale VGG19 feature L1 (FOMM's perceptual loss), weights from a local file only.

    weights: a torchvision ``vgg19`` state dict (``.pth``); nothing is ever downloaded.
    """

    LAYERS = (2, 7, 12, 21, 30)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, weights: Path) -> None:
        super().__init__()
        from models.torchvision_compat import import_torchvision

        torchvision = import_torchvision()
        if not weights.is_file():
            raise ValueError(f"VGG weights file {weights} does not exist")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
            raise ValueError(f"cannot read VGG weights {weights}: {error}") from error
        vgg = torchvision.models.vgg19()
        try:
            vgg.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"{weights} is not a torchvision vgg19 state dict: {error}") from error
        self.features = vgg.features[: self.LAYERS[-1]].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images - self.mean) / self.std
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index + 1 in self.LAYERS:
                outputs.append(x)
        return outputs

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = prediction.new_zeros(())
        for p, t in zip(pyramid(prediction), pyramid(target), strict=True):
            for fp, ft in zip(self._features(p), self._features(t.detach()), strict=True):
                total = total + F.l1_loss(fp, ft)
        return total / len(PYRAMID_SCALES)


def clip_global_loss(styled_embedding: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
    """1 - cos(E_I(styled), E_T(prompt)): the output as a whole should match the prompt."""
    return (
        1.0 - F.cosine_similarity(styled_embedding, text_embedding.expand_as(styled_embedding))
    ).mean()
