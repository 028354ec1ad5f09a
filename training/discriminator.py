"""Multi-scale patch discriminator (least-squares GAN) with feature matching.

After the first-order motion model's discriminator: at each scale a stack of spectrally
normalised strided convolutions ends in a map of real/fake scores, one per patch, so the
generator is pushed towards sharp local texture (hair, teeth, eyes) that L1 and MS-SSIM let
blur. Feature matching compares the discriminator's intermediate features of the output and
of the real frame, a learned perceptual loss that needs no pretrained network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

__all__ = [
    "DiscriminatorConfig",
    "DiscriminatorOutput",
    "MultiScaleDiscriminator",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
]

DiscriminatorOutput = dict[str, list[torch.Tensor]]
"""scale name -> [feature maps of each block ..., the patch score map Bx1xhxw last]."""


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Widths and scales; the defaults suit 128x128 frames on a CPU."""

    block_expansion: int = 32
    max_features: int = 256
    num_blocks: int = 4
    scales: tuple[float, ...] = (1.0, 0.5)


class _PatchDiscriminator(nn.Module):
    """x: Bx3xHxW -> [block features ..., scores Bx1xhxw]."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        blocks = []
        width_in = 3
        for i in range(config.num_blocks):
            width = min(config.max_features, config.block_expansion * 2**i)
            blocks.append(
                nn.Sequential(
                    spectral_norm(nn.Conv2d(width_in, width, 4, stride=2, padding=1)),
                    nn.LeakyReLU(0.2),
                )
            )
            width_in = width
        self.blocks = nn.ModuleList(blocks)
        self.score = spectral_norm(nn.Conv2d(width_in, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return [*features, self.score(x)]


class MultiScaleDiscriminator(nn.Module):
    """forward(images: Bx3xHxW in [0, 1]) -> :data:`DiscriminatorOutput`, one entry a scale."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        self.scales = self.config.scales
        self.discriminators = nn.ModuleDict(
            {_name(scale): _PatchDiscriminator(self.config) for scale in self.scales}
        )

    def forward(self, images: torch.Tensor) -> DiscriminatorOutput:
        out = {}
        for scale in self.scales:
            x = images if scale == 1.0 else F.interpolate(images, scale_factor=scale, mode="area")
            out[_name(scale)] = self.discriminators[_name(scale)](x * 2 - 1)
        return out


def _name(scale: float) -> str:
    return f"scale_{scale:g}".replace(".", "_")


def generator_adversarial_loss(fake: DiscriminatorOutput) -> torch.Tensor:
    """Least-squares GAN, generator side: the fake scores should read 1 (real)."""
    return _mean([(1 - maps[-1]).pow(2).mean() for maps in fake.values()])


def discriminator_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """Least-squares GAN, discriminator side: real scores 1, fake scores 0."""
    return _mean(
        [(1 - real[name][-1]).pow(2).mean() + fake[name][-1].pow(2).mean() for name in real]
    )


def feature_matching_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """Mean L1 between the fake and (detached) real features of every block and scale."""
    return _mean(
        [
            F.l1_loss(fake_map, real_map.detach())
            for name in real
            for real_map, fake_map in zip(real[name][:-1], fake[name][:-1], strict=True)
        ]
    )


def _mean(values: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(values)).mean()
