"""Stage 1: self-supervised reconstruction of a driving frame from a source frame of one clip.

The keypoint detector sees both frames, the generator warps the source by the keypoint motion
and must reproduce the driving frame (multi-scale L1 + MS-SSIM, optional VGG, and with a
discriminator a least-squares GAN plus feature matching, which reward sharp texture where L1
and MS-SSIM reward blur), while the keypoints and Jacobians must follow a random warp of the
driving frame (equivariance). No labels and no pretrained network are needed; the
discriminator is trained by :func:`discriminator_step` between generator steps.
"""

from __future__ import annotations

import torch
from torch import nn

from training.discriminator import (
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from training.losses import (
    RandomWarp,
    VGGPerceptualLoss,
    equivariance_losses,
    ms_ssim_loss,
    multiscale_l1,
)
from training.options import Stage1Weights


def keypoints_of(kp_detector: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """images: Bx3xHxW -> (keypoints BxKx2, Jacobians BxKx2x2; identity when not estimated)."""
    out = kp_detector(images)
    value = out["value"]
    jacobian = out.get("jacobian")
    if jacobian is None:
        jacobian = torch.eye(2, device=value.device).expand(*value.shape[:2], 2, 2)
    return value, jacobian


class ReconstructionModel(nn.Module):
    """Keypoint detector + generator with the stage-1 losses (one module so DDP can wrap it).

    forward(source: Bx3xHxW, driving: Bx3xHxW) -> (weighted losses by name, prediction Bx3xHxW).
    """

    def __init__(
        self,
        kp_detector: nn.Module,
        generator: nn.Module,
        weights: Stage1Weights | None = None,
        perceptual: VGGPerceptualLoss | None = None,
    ) -> None:
        super().__init__()
        self.kp_detector = kp_detector
        self.generator = generator
        self.weights = weights or Stage1Weights()
        self.perceptual = perceptual

    def forward(
        self,
        source: torch.Tensor,
        driving: torch.Tensor,
        discriminator: MultiScaleDiscriminator | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Losses of reconstructing ``driving`` from ``source``; with ``discriminator`` (passed
        in, not owned, so DDP never expects its gradients here) the GAN terms too."""
        kp_source = self.kp_detector(source)
        kp_driving = self.kp_detector(driving)
        prediction = self.generator(source, kp_driving=kp_driving, kp_source=kp_source)[
            "prediction"
        ]
        w = self.weights
        losses = {
            "l1": w.l1 * multiscale_l1(prediction, driving),
            "ms_ssim": w.ms_ssim * ms_ssim_loss(prediction, driving),
        }
        if self.perceptual is not None:
            losses["perceptual"] = w.perceptual * self.perceptual(prediction, driving)
        if discriminator is not None:
            # The discriminator only judges here; its weights move in discriminator_step.
            discriminator.requires_grad_(False)
            fake = discriminator(prediction)
            with torch.no_grad():
                real = discriminator(driving)
            losses["adversarial"] = w.adversarial * generator_adversarial_loss(fake)
            losses["feature_matching"] = w.feature_matching * feature_matching_loss(real, fake)
        warp = RandomWarp(driving.shape[0])
        value_loss, jacobian_loss = equivariance_losses(
            lambda images: keypoints_of(self.kp_detector, images),
            driving,
            kp_driving["value"],
            kp_driving.get("jacobian"),
            warp,
        )
        losses["equivariance_value"] = w.equivariance_value * value_loss
        if jacobian_loss is not None:
            losses["equivariance_jacobian"] = w.equivariance_jacobian * jacobian_loss
        return losses, prediction


def discriminator_step(
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
) -> torch.Tensor:
    """One least-squares step of ``discriminator`` on real and (detached) fake Bx3xHxW frames.

    Only the discriminator's weights change: ``fake`` is detached from the generator.
    Returns the loss before the step.
    """
    discriminator.requires_grad_(True)
    loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()
