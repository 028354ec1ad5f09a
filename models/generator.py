"""Occlusion-aware generator (first-order motion model): encode, warp, bottleneck, decode.

The style of the output lives in the image pathway (``first``, ``down_blocks``,
``bottleneck``, ``up_blocks``, ``final``); the dense motion network only says where pixels
come from. Style deltas therefore touch the image pathway only (see
:func:`style_layer_names`), so motion survives stylisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from models.config import ModelConfig
from models.dense_motion import DenseMotionNetwork

__all__ = ["OcclusionAwareGenerator", "style_layer_names"]


class OcclusionAwareGenerator(nn.Module):
    """forward(source: Bx3xHxW in [0, 1], kp_driving, kp_source) -> dict with
    "prediction": Bx3xHxW in [0, 1], "deformed": the source warped at full resolution,
    and the dense motion outputs ("mask", "sparse_deformed", "occlusion_map").
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        params = config.generator
        self.dense_motion_network = DenseMotionNetwork(config)
        self.first = SameBlock2d(config.num_channels, params.block_expansion, 7, padding=3)
        widths = [
            min(params.max_features, params.block_expansion * (2**i))
            for i in range(params.num_down_blocks + 1)
        ]
        self.down_blocks = nn.ModuleList(
            DownBlock2d(widths[i], widths[i + 1]) for i in range(params.num_down_blocks)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(widths[i + 1], widths[i]) for i in reversed(range(params.num_down_blocks))
        )
        self.bottleneck = nn.Sequential()
        for i in range(params.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(widths[-1], 3, padding=1))
        self.final = nn.Conv2d(params.block_expansion, config.num_channels, 7, padding=3)

    def encode_source(self, source_image: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW -> BxCxH/2^nxW/2^n: source features, reusable for every driving frame."""
        out = self.first(source_image)
        for down_block in self.down_blocks:
            out = down_block(out)
        return out

    def decode(
        self, source_features: torch.Tensor, motion: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Warp encoded source features by ``motion`` (dense motion outputs) -> Bx3xHxW."""
        out = warp(source_features, motion["deformation"])
        occlusion = motion.get("occlusion_map")
        if occlusion is not None:
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
            out = out * occlusion
        out = self.bottleneck(out)
        for up_block in self.up_blocks:
            out = up_block(out)
        return torch.sigmoid(self.final(out))

    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: dict[str, torch.Tensor],
        kp_source: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        motion = self.dense_motion_network(source_image, kp_driving, kp_source)
        out = dict(motion)
        out["prediction"] = self.decode(self.encode_source(source_image), motion)
        out["deformed"] = warp(source_image, motion["deformation"])
        return out


def warp(image: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Sample image: BxCxHxW at deformation: Bxhxwx2 (resized to HxW when they differ)."""
    if deformation.shape[1:3] != image.shape[2:]:
        deformation = F.interpolate(
            deformation.permute(0, 3, 1, 2), size=image.shape[2:], mode="bilinear"
        ).permute(0, 2, 3, 1)
    return F.grid_sample(image, deformation, align_corners=True)


def style_layer_names(generator: OcclusionAwareGenerator) -> list[str]:
    """Names of the generator's image-pathway layers with parameters (convs and norms)."""
    return [
        name
        for name, module in generator.named_modules()
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d))
        and not name.startswith("dense_motion_network")
    ]
