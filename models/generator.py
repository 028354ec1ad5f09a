"""Skip-warp generator: the reference, warped at every scale, plus a learned residual.

Designed after the thin-plate-spline motion model's inpainting network and its successors:
the reference is encoded once into features at every scale (full size down to the
bottleneck); each frame, the dense motion network's flow warps *every* scale, per-scale
occlusion maps say where the warped reference can be trusted, and the decoder brings each
warped scale in through a skip connection. Unlike the first-order generator (encoder →
bottleneck → decoder, where nothing of the reference reached the output sharply) the
output is the reference image itself warped at full resolution plus a residual the decoder
paints::

    prediction = clamp(warp(reference, flow) + residual(decoder), 0, 1)

With ``residual_downscale`` = n the decoder stops n levels short of full size: the top n
levels of the reference are neither warped nor decoded (their occlusion channels go unused),
and the residual is painted at H/2^n and upsampled; the warped reference stays full size.

The residual head starts at zero, so an untrained generator at zero motion returns the
reference exactly, and training only has to learn what motion changes (mouth, eyes,
disocclusions). Skips are added, not concatenated: on two CPU cores the decoder's
full-resolution convolutions dominate a frame, and addition keeps their width.

The style of the output lives in the image pathway (``first``, ``down_blocks``,
``bottleneck``, ``up_blocks``, ``final`` and, with ``style_finish_channels``, the full-size
``finish``); the dense motion network only says where pixels come from. Style deltas touch the
image pathway only (see :func:`style_layer_names`), so motion survives stylisation. The finish
is the identity in the base weights (its last convolution starts, and stays, at zero: stage 1
does not train it), so only a style changes it: without it a style could only change the
residual, painted at low resolution over the sharp warped photograph, and every style looked
like the photograph in another palette.

With ``style_reference_channels`` the reference is restyled before it is encoded
(:class:`ReferenceStyle`, a small U-Net that is also the identity in the base weights): the
warped reference is most of every frame, so a style drawn once on the sharp reference reaches
every frame at full resolution, and it costs nothing per frame (the encoded reference is kept
per style). The finish sees only the render, whose edges are softer than the photograph's, so
it cannot draw a recipe's lines and flat fills from it (training/README.md); the reference
style sees the photograph itself. The dense motion network still sees the photograph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, make_coordinate_grid
from models.config import ModelConfig
from models.dense_motion import DenseMotionNetwork

__all__ = [
    "OcclusionAwareGenerator",
    "ReferenceStyle",
    "StyleFinish",
    "flow_offset",
    "identity_motion",
    "reference_style_layer_names",
    "style_finish_layer_names",
    "style_layer_names",
    "warp_by_offset",
]


class OcclusionAwareGenerator(nn.Module):
    """forward(source: Bx3xHxW in [0, 1], kp_driving, kp_source) -> dict with
    "prediction": Bx3xHxW in [0, 1], "deformed": the source warped at full resolution,
    "residual": Bx3xHxW what the decoder adds to it, and the dense motion outputs
    ("deformation", "mask", "sparse_deformed", "occlusion_map").
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
        if not 0 <= params.residual_downscale <= params.num_down_blocks:
            raise ValueError(
                f"residual_downscale {params.residual_downscale} must be in "
                f"0..num_down_blocks ({params.num_down_blocks})"
            )
        self.residual_level = params.residual_downscale
        self.up_blocks = nn.ModuleList(
            UpBlock2d(widths[i + 1], widths[i])
            for i in reversed(range(self.residual_level, params.num_down_blocks))
        )
        self.bottleneck = nn.Sequential()
        for i in range(params.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(widths[-1], 3, padding=1))
        # Zero residual at the start: an untrained generator shows the warped reference.
        self.final = _zeroed(
            nn.Conv2d(widths[self.residual_level], config.num_channels, 7, padding=3)
        )
        channels = params.style_finish_channels
        self.finish = StyleFinish(config.num_channels, channels) if channels else None
        channels = params.style_reference_channels
        self.restyle = ReferenceStyle(config.num_channels, channels) if channels else None

    def encode_source(self, source_image: torch.Tensor) -> list[torch.Tensor]:
        """Bx3xHxW -> [the (restyled) image, features at H, H/2, ..., H/2^n]: reusable for
        every frame."""
        if self.restyle is not None:
            source_image = self.restyle(source_image)
        out = self.first(source_image)
        features = [source_image, out]
        for down_block in self.down_blocks:
            out = down_block(out)
            features.append(out)
        return features

    def decode(
        self, source_features: list[torch.Tensor], motion: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Warp every scale of :meth:`encode_source`'s output by ``motion`` -> Bx3xHxW."""
        return self._decode(source_features, motion)[0]

    def _decode(
        self, source_features: list[torch.Tensor], motion: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prediction, warped source image, residual), each Bx3xHxW."""
        image, *levels = source_features
        offset = flow_offset(motion["deformation"])
        occlusion = motion.get("occlusion_map")
        first = self.residual_level
        warped = [
            _warp_occluded(x, offset, occlusion, i) for i, x in enumerate(levels) if i >= first
        ]
        out = self.bottleneck(warped[-1])
        for up_block, skip in zip(self.up_blocks, reversed(warped[:-1]), strict=True):
            out = up_block(out) + skip
        residual = self.final(out)
        if residual.shape[2:] != image.shape[2:]:
            residual = F.interpolate(
                residual, size=image.shape[2:], mode="bilinear", align_corners=False
            )
        deformed = warp_by_offset(image, offset)
        prediction = (deformed + residual).clamp(0.0, 1.0)
        if self.finish is not None:
            prediction = self.finish(prediction)
        return prediction, deformed, residual

    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: dict[str, torch.Tensor],
        kp_source: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        motion = self.dense_motion_network(source_image, kp_driving, kp_source)
        prediction, deformed, residual = self._decode(self.encode_source(source_image), motion)
        return {**motion, "prediction": prediction, "deformed": deformed, "residual": residual}


class StyleFinish(nn.Module):
    """forward(image: BxCxHxW in [0, 1]) -> BxCxHxW in [0, 1]: the image plus what three
    3x3 convolutions (the middle one dilated: a 9x9 view, enough for an outline) make of it.

    The last convolution starts at zero, so the finish is the identity until a style delta
    changes it; stage 1 keeps it so (see ``training.trainer``).
    """

    def __init__(self, num_channels: int, channels: int) -> None:
        super().__init__()
        self.inner = nn.Conv2d(num_channels, channels, 3, padding=1)
        self.wide = nn.Conv2d(channels, channels, 3, padding=2, dilation=2)
        self.out = _zeroed(nn.Conv2d(channels, num_channels, 3, padding=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if _still_identity(self.out):
            return image
        change = self.out(F.relu(self.wide(F.relu(self.inner(image)))))
        return (image + change).clamp(0.0, 1.0)


class ReferenceStyle(nn.Module):
    """forward(image: BxCxHxW in [0, 1], H and W divisible by 4) -> BxCxHxW in [0, 1]: the
    image plus what a small U-Net makes of it (full, 1/2 and 1/4 size, two dilated
    convolutions at 1/4: a view of about 40x40 pixels, enough for flat fills and ink lines).

    Runs once per reference and style (see :class:`OcclusionAwareGenerator`). Its last
    convolution starts at zero, so it is the identity until a style delta changes it; stage 1
    keeps it so (see ``training.trainer``).
    """

    def __init__(self, num_channels: int, channels: int) -> None:
        super().__init__()
        wide, widest = 2 * channels, 4 * channels
        self.inner = nn.Conv2d(num_channels, channels, 3, padding=1)
        self.down1 = nn.Conv2d(channels, wide, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(wide, widest, 3, stride=2, padding=1)
        self.middle1 = nn.Conv2d(widest, widest, 3, padding=2, dilation=2)
        self.middle2 = nn.Conv2d(widest, widest, 3, padding=4, dilation=4)
        self.up2 = nn.Conv2d(widest, wide, 3, padding=1)
        self.up1 = nn.Conv2d(wide, channels, 3, padding=1)
        self.out = _zeroed(nn.Conv2d(channels, num_channels, 3, padding=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if _still_identity(self.out):
            return image
        full = F.relu(self.inner(image))
        half = F.relu(self.down1(full))
        quarter = F.relu(self.down2(half))
        quarter = F.relu(self.middle2(F.relu(self.middle1(quarter)))) + quarter
        half = F.relu(self.up2(F.interpolate(quarter, scale_factor=2.0))) + half
        full = F.relu(self.up1(F.interpolate(half, scale_factor=2.0))) + full
        return (image + self.out(full)).clamp(0.0, 1.0)


def _zeroed(conv: nn.Conv2d) -> nn.Conv2d:
    """``conv`` with weight and bias at zero (a residual head, or the last convolution of a
    style-only module, which then starts as the identity)."""
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
    return conv


def _still_identity(out: nn.Conv2d) -> bool:
    """Whether a style-only module whose last convolution is ``out`` is the identity (base
    weights, no style on it) and no gradient is wanted: then there is nothing to compute."""
    bias = out.bias
    assert bias is not None
    return not torch.is_grad_enabled() and not (out.weight.any() or bias.any())


def flow_offset(deformation: torch.Tensor) -> torch.Tensor:
    """Bxhxwx2 sampling grid -> Bx2xhxw offset from the identity grid (zero = no motion).

    Resizing the offset rather than the grid keeps zero motion exactly the identity at every
    scale (a bilinearly resized grid is not the grid of the larger size at the borders).
    """
    height, width = deformation.shape[1:3]
    identity = make_coordinate_grid(height, width, deformation.dtype, deformation.device)
    return (deformation - identity).permute(0, 3, 1, 2)


def warp_by_offset(image: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Sample image: BxCxHxW at identity + offset (Bx2xhxw, resized to HxW when they differ)."""
    height, width = image.shape[2:]
    if offset.shape[2:] != (height, width):
        offset = F.interpolate(offset, size=(height, width), mode="bilinear", align_corners=True)
    identity = make_coordinate_grid(height, width, image.dtype, image.device)
    return F.grid_sample(image, identity + offset.permute(0, 2, 3, 1), align_corners=True)


def identity_motion(
    batch: int, height: int, width: int, like: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The motion of a still frame: identity deformation Bxhxwx2, nothing occluded."""
    grid = make_coordinate_grid(height, width, like.dtype, like.device)
    return {"deformation": grid.expand(batch, height, width, 2)}


def _warp_occluded(
    features: torch.Tensor, offset: torch.Tensor, occlusion: torch.Tensor | None, level: int
) -> torch.Tensor:
    """Features warped by ``offset`` times occlusion channel ``level`` (resized to fit)."""
    out = warp_by_offset(features, offset)
    if occlusion is None:
        return out
    mask = occlusion[:, level : level + 1]
    if mask.shape[2:] != out.shape[2:]:
        mask = F.interpolate(mask, size=out.shape[2:], mode="bilinear", align_corners=True)
    return out * mask


def style_layer_names(generator: OcclusionAwareGenerator) -> list[str]:
    """Names of the generator's image-pathway layers with parameters (convs and norms)."""
    return [
        name
        for name, module in generator.named_modules()
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d))
        and not name.startswith("dense_motion_network")
    ]


def reference_style_layer_names(generator: nn.Module) -> list[str]:
    """Names of the reference style's convolutions (none without one)."""
    restyle = getattr(generator, "restyle", None)
    if not isinstance(restyle, ReferenceStyle):
        return []
    return [f"restyle.{name}" for name, _ in restyle.named_children()]


def style_finish_layer_names(generator: nn.Module) -> list[str]:
    """Names of the style finish's convolutions (none without one)."""
    finish = getattr(generator, "finish", None)
    if not isinstance(finish, StyleFinish):
        return []
    return [f"finish.{name}" for name, _ in finish.named_children()]
