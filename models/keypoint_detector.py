"""Keypoint detector (first-order motion model): K keypoints and 2x2 Jacobians per frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid
from models.config import ModelConfig

__all__ = ["KPDetector"]


class KPDetector(nn.Module):
    """Hourglass on a downscaled frame; keypoints by soft-argmax of K heatmaps.

    forward(x: Bx3xHxW in [0, 1]) -> {"value": BxKx2 in [-1, 1], "jacobian": BxKx2x2}.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        params = config.keypoint
        self.predictor = Hourglass(
            params.block_expansion,
            in_features=config.num_channels,
            max_features=params.max_features,
            num_blocks=params.num_blocks,
        )
        self.kp = nn.Conv2d(self.predictor.out_filters, config.num_kp, 7, padding=params.pad)
        self.jacobian: nn.Conv2d | None = None
        if config.estimate_jacobian:
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters, 4 * config.num_kp, 7, padding=params.pad
            )
            # Start at identity Jacobians: motion is a pure shift until training says otherwise.
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * config.num_kp))  # type: ignore[union-attr]
        self.temperature = params.temperature
        self.scale_factor = params.scale_factor
        if self.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(config.num_channels, self.scale_factor)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.scale_factor != 1:
            x = self.down(x)
        feature_map = self.predictor(x)
        prediction = self.kp(feature_map)
        batch, num_kp, height, width = prediction.shape
        heatmap = F.softmax(prediction.view(batch, num_kp, -1) / self.temperature, dim=2)
        heatmap = heatmap.view(batch, num_kp, height, width)
        grid = make_coordinate_grid(height, width, heatmap.dtype, heatmap.device)
        out = {"value": (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))}
        if self.jacobian is not None:
            jacobian_map = self.jacobian(feature_map).view(batch, num_kp, 4, height, width)
            jacobian = (heatmap.unsqueeze(2) * jacobian_map).sum(dim=(3, 4))
            out["jacobian"] = jacobian.view(batch, num_kp, 2, 2)
        return out
