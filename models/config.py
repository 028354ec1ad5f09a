"""Model hyper-parameters: one dataclass per network, presets selectable by name.

Names follow the first-order motion model's config files (``kp_detector_params``,
``dense_motion_params``, ``generator_params``) so a published YAML maps field for field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "GENERATOR_ARCHITECTURE",
    "DenseMotionConfig",
    "GeneratorConfig",
    "KeypointConfig",
    "ModelConfig",
    "PRESETS",
    "get_preset",
]


@dataclass(frozen=True)
class KeypointConfig:
    """Keypoint detector: hourglass on the frame downscaled by ``scale_factor``."""

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    temperature: float = 0.1
    pad: int = 0


@dataclass(frozen=True)
class DenseMotionConfig:
    """Dense motion network: hourglass over K+1 sparse motions at ``scale_factor``."""

    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01


# The generator this code builds (see models/generator.py). Checkpoints record it; configs
# written before the field existed are the first-order generator, which no longer loads.
GENERATOR_ARCHITECTURE = "skip-warp-residual"
LEGACY_ARCHITECTURE = "first-order"


@dataclass(frozen=True)
class GeneratorConfig:
    """Skip-warp generator: encoder, every scale warped and occluded, bottleneck, decoder
    with additive skips, and a residual on the warped reference image."""

    architecture: str = GENERATOR_ARCHITECTURE
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    # The decoder stops this many up blocks short of full size: its residual is painted at
    # H / 2**residual_downscale and upsampled, while the warped reference stays full size.
    residual_downscale: int = 0
    # Width of the style finish (0: none): three small full-resolution convolutions on the
    # output that are the identity in the base weights; only style deltas change them, so a
    # style can change the picture's every pixel (grey, lines, flat colour), which the
    # residual painted at H / 2**residual_downscale cannot.
    style_finish_channels: int = 0
    # Width of the reference style (0: none): a small U-Net that restyles the reference before
    # it is encoded, the identity in the base weights; only style deltas change it. Run once
    # per reference and style, so it costs nothing per frame.
    style_reference_channels: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build the extractor and the generator of one preset."""

    name: str
    image_size: int
    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True
    keypoint: KeypointConfig = field(default_factory=KeypointConfig)
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)

    @property
    def feature_size(self) -> int:
        """Floats per frame of motion features: K keypoints (x, y) plus K 2x2 Jacobians."""
        return self.num_kp * 2 + (self.num_kp * 4 if self.estimate_jacobian else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown or missing fields raise ValueError."""
        try:
            return cls(
                **{
                    **data,
                    "keypoint": KeypointConfig(**data["keypoint"]),
                    "dense_motion": DenseMotionConfig(**data["dense_motion"]),
                    "generator": GeneratorConfig(
                        **{"architecture": LEGACY_ARCHITECTURE, **data["generator"]}
                    ),
                }
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"invalid model config {data!r}: {error}") from error


PRESETS: dict[str, ModelConfig] = {
    # The published first-order-model vox-256 sizes; the released checkpoint loads into it.
    "full-256": ModelConfig(name="full-256", image_size=256),
    # Real time on two CPU cores at 128x128: small hourglasses (a 32x32 input after the 0.25
    # downscale needs few levels), a short bottleneck and the residual painted at 64x64 over
    # the full-size warped reference; see models/README.md for timings.
    "lite-128": ModelConfig(
        name="lite-128",
        image_size=128,
        keypoint=KeypointConfig(block_expansion=16, max_features=128, num_blocks=4),
        dense_motion=DenseMotionConfig(block_expansion=16, max_features=128, num_blocks=4),
        generator=GeneratorConfig(
            block_expansion=32,
            max_features=128,
            num_down_blocks=2,
            num_bottleneck_blocks=2,
            residual_downscale=1,
            style_finish_channels=16,
            style_reference_channels=16,
        ),
    ),
    # For tests: seconds to build, train a few steps and render.
    "tiny": ModelConfig(
        name="tiny",
        image_size=32,
        keypoint=KeypointConfig(
            block_expansion=8, max_features=32, num_blocks=2, scale_factor=0.5, pad=3
        ),
        dense_motion=DenseMotionConfig(
            block_expansion=8, max_features=32, num_blocks=2, scale_factor=0.5
        ),
        generator=GeneratorConfig(
            block_expansion=8, max_features=32, num_down_blocks=1, num_bottleneck_blocks=1
        ),
    ),
}


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """The preset called ``name`` (optionally with top-level fields replaced)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides) if overrides else PRESETS[name]
