"""Dense motion network (first-order motion model): sparse keypoint motions -> dense flow.

Each keypoint k gives a local affine motion from the driving frame back to the source,
``z -> kp_source + J_source J_driving^-1 (z - kp_driving)``; an hourglass looks at the source
warped by each of them (plus the identity) and predicts soft masks that blend them into one
flow field, and an occlusion map telling the generator where the source has nothing to show.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import AntiAliasInterpolation2d, Hourglass, kp2gaussian, make_coordinate_grid
from models.config import ModelConfig

__all__ = ["DenseMotionNetwork", "inverse_2x2"]


def inverse_2x2(matrix: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of ...x2x2 matrices (faster than torch.inverse for tiny ones)."""
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    det = (a * d - b * c).unsqueeze(-1).unsqueeze(-1)
    adjugate = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    return adjugate / det


class DenseMotionNetwork(nn.Module):
    """forward(source: Bx3xHxW, kp_driving, kp_source) -> dict with
    "deformation": Bxhxwx2 sampling grid (driving -> source), "mask": Bx(K+1)xhxw,
    "sparse_deformed": Bx(K+1)x3xhxw and, with occlusion, "occlusion_map": BxLxhxw, one
    channel per generator scale (L = num_down_blocks + 1: full size first, bottleneck last),
    where h, w are H, W times ``scale_factor``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        params = config.dense_motion
        self.num_kp = config.num_kp
        self.hourglass = Hourglass(
            params.block_expansion,
            in_features=(config.num_kp + 1) * (config.num_channels + 1),
            max_features=params.max_features,
            num_blocks=params.num_blocks,
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, config.num_kp + 1, 7, padding=3)
        self.occlusion: nn.Conv2d | None = None
        if config.generator.estimate_occlusion_map:
            scales = config.generator.num_down_blocks + 1
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, scales, 7, padding=3)
        self.scale_factor = params.scale_factor
        self.kp_variance = params.kp_variance
        if self.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(config.num_channels, self.scale_factor)

    def downscale(self, source_image: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW -> Bx3xhxw: the resolution the motion is estimated at."""
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: dict[str, torch.Tensor],
        kp_source: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        return self.predict(self.downscale(source_image), kp_driving, kp_source)

    def predict(
        self,
        source_small: torch.Tensor,
        kp_driving: dict[str, torch.Tensor],
        kp_source: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Same as forward for a source already passed through :meth:`downscale`."""
        batch, channels, height, width = source_small.shape
        grid = make_coordinate_grid(height, width, source_small.dtype, source_small.device)
        heatmaps = self._heatmap_differences(grid, kp_driving, kp_source)
        sparse_motion = self._sparse_motions(grid, kp_driving, kp_source)
        sparse_deformed = self._deform_source(source_small, sparse_motion)
        hourglass_input = torch.cat([heatmaps.unsqueeze(2), sparse_deformed], dim=2)
        prediction = self.hourglass(hourglass_input.view(batch, -1, height, width))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (sparse_motion * mask.unsqueeze(-1)).sum(dim=1)
        out = {"deformation": deformation, "mask": mask, "sparse_deformed": sparse_deformed}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction))
        return out

    def _heatmap_differences(
        self,
        grid: torch.Tensor,
        kp_driving: dict[str, torch.Tensor],
        kp_source: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Bx(K+1)xhxw: driving minus source Gaussians, after a zero map for the background."""
        difference = kp2gaussian(kp_driving["value"], grid, self.kp_variance) - kp2gaussian(
            kp_source["value"], grid, self.kp_variance
        )
        return F.pad(difference, (0, 0, 0, 0, 1, 0))

    def _sparse_motions(
        self,
        grid: torch.Tensor,
        kp_driving: dict[str, torch.Tensor],
        kp_source: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Bx(K+1)xhxwx2 sampling grids: the identity, then one local affine motion per keypoint."""
        batch = kp_driving["value"].shape[0]
        height, width = grid.shape[:2]
        relative = grid.unsqueeze(0).unsqueeze(0) - kp_driving["value"].view(batch, -1, 1, 1, 2)
        if "jacobian" in kp_driving:
            jacobian = kp_source["jacobian"] @ inverse_2x2(kp_driving["jacobian"])
            relative = torch.einsum("bkij,bkhwj->bkhwi", jacobian, relative)
        driving_to_source = relative + kp_source["value"].view(batch, -1, 1, 1, 2)
        identity = grid.expand(batch, 1, height, width, 2)
        return torch.cat([identity, driving_to_source], dim=1)

    def _deform_source(
        self, source_small: torch.Tensor, sparse_motion: torch.Tensor
    ) -> torch.Tensor:
        """Bx(K+1)x3xhxw: the source warped by each sparse motion."""
        batch, channels, height, width = source_small.shape
        copies = sparse_motion.shape[1]
        repeated = source_small.unsqueeze(1).expand(batch, copies, channels, height, width)
        deformed = F.grid_sample(
            repeated.reshape(batch * copies, channels, height, width),
            sparse_motion.reshape(batch * copies, height, width, 2),
            align_corners=True,
        )
        return deformed.view(batch, copies, channels, height, width)
