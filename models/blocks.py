"""Building blocks shared by the networks, in the first-order motion model's layout.

Attribute names (``conv``, ``norm``, ``encoder.down_blocks`` ...) match the published code so
that its checkpoints load by name. Coordinates are normalised to [-1, 1] with the corner pixel
centres at +-1 (``align_corners=True`` everywhere), as in the published models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AntiAliasInterpolation2d",
    "DownBlock2d",
    "Hourglass",
    "ResBlock2d",
    "SameBlock2d",
    "UpBlock2d",
    "kp2gaussian",
    "make_coordinate_grid",
]


def make_coordinate_grid(
    height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """HxWx2 grid of (x, y) in [-1, 1]."""
    x = torch.linspace(-1.0, 1.0, width, dtype=dtype, device=device)
    y = torch.linspace(-1.0, 1.0, height, dtype=dtype, device=device)
    return torch.stack([x.view(1, -1).expand(height, -1), y.view(-1, 1).expand(-1, width)], dim=2)


def kp2gaussian(kp: torch.Tensor, grid: torch.Tensor, kp_variance: float) -> torch.Tensor:
    """Gaussian bumps at keypoints. kp: BxKx2, grid: HxWx2 -> BxKxHxW."""
    diff = grid.unsqueeze(0).unsqueeze(0) - kp.unsqueeze(2).unsqueeze(2)
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / kp_variance)


class ResBlock2d(nn.Module):
    """Pre-activation residual block keeping the resolution. x: BxCxHxW -> BxCxHxW."""

    def __init__(self, in_features: int, kernel_size: int, padding: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.norm2 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class UpBlock2d(nn.Module):
    """Nearest x2 upsampling then conv-norm-relu. x: BxCinxHxW -> BxCoutx2Hx2W."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(out)))


class DownBlock2d(nn.Module):
    """Conv-norm-relu then 2x2 average pooling. x: BxCinxHxW -> BxCoutxH/2xW/2."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class SameBlock2d(nn.Module):
    """Conv-norm-relu keeping the resolution. x: BxCinxHxW -> BxCoutxHxW."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


def _level_features(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * (2**level))


class Encoder(nn.Module):
    """Hourglass encoder. x: BxCxHxW -> [x, level 1, ..., level n] (each half the size)."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _level_features(block_expansion, max_features, i),
                _level_features(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for down_block in self.down_blocks:
            outs.append(down_block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder with skip connections; output has ``out_filters`` channels."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            widening = 1 if i == num_blocks - 1 else 2  # later levels also take the skip
            blocks.append(
                UpBlock2d(
                    widening * _level_features(block_expansion, max_features, i + 1),
                    _level_features(block_expansion, max_features, i),
                )
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        out = features[-1]
        for up_block, skip in zip(self.up_blocks, reversed(features[:-1]), strict=True):
            out = torch.cat([up_block(out), skip], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style hourglass. x: BxCinxHxW -> Bx(block_expansion+Cin)xHxW.

    H and W must be divisible by 2**num_blocks.
    """

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256
    ) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then subsampling by 1/scale. x: BxCxHxW -> BxCx(H*scale)x(W*scale)."""

    weight: torch.Tensor

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        coords = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2
        bump = torch.exp(-(coords**2) / (2 * sigma**2))
        kernel = bump.view(-1, 1) * bump.view(1, -1)
        kernel = kernel / kernel.sum()
        # Registered as a buffer named "weight": the published checkpoints store it.
        self.register_buffer("weight", kernel.expand(channels, 1, -1, -1).contiguous())
        self.groups = channels
        self.scale = scale
        self.int_inv_scale = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight, groups=self.groups)
        return out[:, :, :: self.int_inv_scale, :: self.int_inv_scale]
