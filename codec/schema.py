"""Feature schemas: what a fixed-size per-frame float vector holds and how coarsely to code it.

A schema is an ordered list of groups; each group is a contiguous slice of the vector with its
own value range, quantization step and the prior spreads the entropy model starts from. The
default motion schema describes FOMM-style features: K keypoints (x, y in [-1, 1]) followed by
K 2x2 Jacobians, all flattened row-major (``models.motion_features.pack_motion`` layout).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from codec.errors import BitstreamError
from models.config import ModelConfig

MAX_SCHEMA_SIZE = 4096  # bounds every per-frame allocation a (possibly hostile) schema can cause


@dataclass(frozen=True)
class FeatureGroup:
    """A contiguous run of ``size`` channels coded with one step and range.

    step: quantization step at rate level 0 (feature units).
    low, high: values are clipped into [low, high] before quantization.
    intra_spread: typical |value| (feature units); scale of the intra-frame Laplace prior.
    inter_spread: typical |frame-to-frame change|; initial scale of the adaptive inter model.
    """

    name: str
    size: int
    step: float
    low: float
    high: float
    intra_spread: float
    inter_spread: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("feature group needs a non-empty name")
        if not 0 < self.size <= MAX_SCHEMA_SIZE:
            raise ValueError(f"group {self.name!r}: size {self.size} not in 1..{MAX_SCHEMA_SIZE}")
        if not (self.step > 0 and self.intra_spread > 0 and self.inter_spread > 0):
            raise ValueError(f"group {self.name!r}: step and spreads must be positive")
        if not self.low < self.high:
            raise ValueError(f"group {self.name!r}: low {self.low} must be below high {self.high}")
        if (self.high - self.low) / self.step > 1 << 20:
            raise ValueError(
                f"group {self.name!r}: range/step above 2**20 levels; use a larger step"
            )


@dataclass(frozen=True)
class FeatureSchema:
    """Ordered feature groups; ``size`` is the length of the per-frame float32 vector."""

    groups: tuple[FeatureGroup, ...]

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError("a feature schema needs at least one group")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"feature group names must be unique, got {names}")
        if self.size > MAX_SCHEMA_SIZE:
            raise ValueError(f"schema size {self.size} exceeds {MAX_SCHEMA_SIZE}")

    @property
    def size(self) -> int:
        return sum(g.size for g in self.groups)

    def slices(self) -> list[tuple[FeatureGroup, slice]]:
        """Each group with the slice of the feature vector it covers."""
        out, start = [], 0
        for group in self.groups:
            out.append((group, slice(start, start + group.size)))
            start += group.size
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [asdict(g) for g in self.groups]}

    @classmethod
    def from_dict(cls, data: Any) -> FeatureSchema:
        """Parse ``to_dict`` output; anything malformed raises BitstreamError."""
        try:
            groups = tuple(_group_from_dict(g) for g in data["groups"])
            return cls(groups=groups)
        except (KeyError, TypeError, ValueError) as exc:
            raise BitstreamError(f"invalid feature schema: {exc}") from exc

    def fingerprint(self) -> str:
        """Short stable hash identifying the schema (both ends must agree on it)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _group_from_dict(data: Any) -> FeatureGroup:
    if not isinstance(data, dict) or set(data) != set(FeatureGroup.__dataclass_fields__):
        raise ValueError(
            f"group must have exactly the fields {sorted(FeatureGroup.__dataclass_fields__)}"
        )
    name, size = data["name"], data["size"]
    if not isinstance(name, str) or not isinstance(size, int) or isinstance(size, bool):
        raise ValueError("group name must be a string and size an integer")
    numbers = {k: data[k] for k in ("step", "low", "high", "intra_spread", "inter_spread")}
    for key, value in numbers.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            raise ValueError(f"group {name!r}: {key} must be a finite number")
    return FeatureGroup(name=name, size=size, **{k: float(v) for k, v in numbers.items()})


# Steps chosen on the training clips (tracked face motion, see codec/README.md) so the default
# payload stays under 4 kbps at 25 fps: 1/128 is one pixel at 256x256 for keypoints (max error
# 0.5 px); a Jacobian error of 1/32 moves a point 25 px from its keypoint by under 1 px.
KEYPOINT_STEP = 1.0 / 128.0
JACOBIAN_STEP = 1.0 / 16.0


def motion_schema(num_kp: int = 10, jacobians: bool = True) -> FeatureSchema:
    """FOMM motion: ``num_kp`` keypoints (x, y in [-1, 1]) then ``num_kp`` 2x2 Jacobians."""
    if not 0 < num_kp <= 256:
        raise ValueError(f"num_kp must be in 1..256, got {num_kp}")
    groups = [
        FeatureGroup("keypoints", 2 * num_kp, KEYPOINT_STEP, -1.0, 1.0, 0.4, 0.01),
    ]
    if jacobians:
        groups.append(FeatureGroup("jacobians", 4 * num_kp, JACOBIAN_STEP, -4.0, 4.0, 1.0, 0.03))
    return FeatureSchema(groups=tuple(groups))


def model_schema(config: ModelConfig) -> FeatureSchema:
    """The motion layout a model config's extractor writes and its renderer reads."""
    return motion_schema(config.num_kp, config.estimate_jacobian)


def feature_map_schema(
    channels: int, height: int = 4, width: int = 4, step: float = 1.0 / 32.0, bound: float = 4.0
) -> FeatureSchema:
    """A compact CxHxW feature map flattened C-major, one group (e.g. a 4x4 latent)."""
    size = channels * height * width
    return FeatureSchema(
        groups=(FeatureGroup("map", size, step, -bound, bound, bound / 4, 4 * step),)
    )
