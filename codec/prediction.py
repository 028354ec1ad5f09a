"""Intra/inter frame coding shared by encoder and decoder, so both run the very same steps.

Intra frames code quantization indices directly; inter frames code the index residual against
one earlier decoded frame, their *reference*, named in the payload by its distance in frames
(1 = the previous frame). Each decoded frame becomes a ``Reference`` (indices, quantizer and the
adaptive scales that follow it), so an inter frame decodes whenever its reference did, whatever
was lost in between. Prediction happens on integer indices, so the decoder's state equals the
encoder's exactly and there is no drift.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from codec.entropymodel import AdaptiveScales, BlockSpec, compress, decompress
from codec.errors import BitstreamError
from codec.quantizer import MIN_LEVEL, Quantizer, max_level
from codec.schema import FeatureSchema

INTRA_PREFIX = struct.Struct(">bH")  # rate level, symbol count
INTER_PREFIX = struct.Struct(">B")  # reference distance in frames
# Frames an inter frame may reach back, and so how many references both ends keep.
REFERENCE_WINDOW = 32


@dataclass(frozen=True)
class Reference:
    """A decoded frame as a prediction source; never changed once made."""

    quantizer: Quantizer
    indices: np.ndarray  # (size,) int64 quantization indices
    scales: AdaptiveScales  # inter-frame scales after this frame

    def reconstruction(self) -> np.ndarray:
        """(size,) float32 features of this frame."""
        return self.quantizer.dequantize(self.indices)


def encode_intra(
    schema: FeatureSchema, features: np.ndarray, level: int
) -> tuple[bytes, Reference]:
    quantizer = Quantizer(schema, level)
    indices = quantizer.quantize(features)
    payload = INTRA_PREFIX.pack(level, schema.size) + compress(
        _blocks(indices, _intra_specs(quantizer))
    )
    return payload, _start(quantizer, indices)


def decode_intra(schema: FeatureSchema, payload: bytes) -> Reference:
    if len(payload) < INTRA_PREFIX.size:
        raise BitstreamError(f"intra payload of {len(payload)} bytes lacks its 3-byte prefix")
    level, count = INTRA_PREFIX.unpack_from(payload)
    if count != schema.size:
        raise BitstreamError(
            f"intra frame codes {count} values but the schema expects {schema.size}"
        )
    try:
        top = max_level(schema)
    except ValueError as exc:
        raise BitstreamError(f"unusable feature schema: {exc}") from exc
    if not MIN_LEVEL <= level <= top:
        raise BitstreamError(f"rate level {level} outside [{MIN_LEVEL}, {top}]")
    quantizer = Quantizer(schema, level)
    parts = decompress(payload[INTRA_PREFIX.size :], _intra_specs(quantizer))
    return _start(quantizer, np.concatenate(parts))


def encode_inter(
    reference: Reference, distance: int, features: np.ndarray
) -> tuple[bytes, Reference]:
    """Code ``features`` against ``reference``, the frame ``distance`` frames back."""
    if not 1 <= distance <= REFERENCE_WINDOW:
        raise ValueError(f"reference distance {distance} not in 1..{REFERENCE_WINDOW}")
    residual = reference.quantizer.quantize(features) - reference.indices
    payload = INTER_PREFIX.pack(distance) + compress(
        _blocks(residual, _inter_specs(reference.quantizer, reference.scales))
    )
    return payload, _advance(reference, residual)


def inter_distance(payload: bytes) -> int:
    """The reference distance an inter payload names (1..REFERENCE_WINDOW)."""
    if len(payload) < INTER_PREFIX.size:
        raise BitstreamError("inter payload lacks its reference distance")
    (distance,) = INTER_PREFIX.unpack_from(payload)
    if not 1 <= distance <= REFERENCE_WINDOW:
        raise BitstreamError(f"reference distance {distance} not in 1..{REFERENCE_WINDOW}")
    return int(distance)


def decode_inter(reference: Reference, payload: bytes) -> Reference:
    quantizer = reference.quantizer
    specs = _inter_specs(quantizer, reference.scales)
    residual = np.concatenate(decompress(payload[INTER_PREFIX.size :], specs))
    indices = reference.indices + residual
    if np.any(indices < quantizer.low) or np.any(indices > quantizer.high):
        raise BitstreamError("inter frame decodes to values outside the schema range")
    return _advance(reference, residual)


def _start(quantizer: Quantizer, indices: np.ndarray) -> Reference:
    spreads = _per_channel(quantizer.schema, "inter_spread")
    return Reference(quantizer, indices, AdaptiveScales(spreads / quantizer.steps))


def _advance(reference: Reference, residual: np.ndarray) -> Reference:
    scales = reference.scales.copy()
    scales.update(residual)
    return Reference(reference.quantizer, reference.indices + residual, scales)


def _per_channel(schema: FeatureSchema, field: str) -> np.ndarray:
    """(size,) array repeating each group's ``field`` over its channels."""
    return np.concatenate([np.full(g.size, float(getattr(g, field))) for g in schema.groups])


def _intra_specs(quantizer: Quantizer) -> list[BlockSpec]:
    """Intra: indices modelled as Laplace(0, intra_spread) on the group's index range."""
    scales = _per_channel(quantizer.schema, "intra_spread") / quantizer.steps
    return [
        BlockSpec(int(quantizer.low[part.start]), int(quantizer.high[part.start]), scales[part])
        for _, part in quantizer.schema.slices()
    ]


def _inter_specs(quantizer: Quantizer, adaptive: AdaptiveScales) -> list[BlockSpec]:
    """Inter: residuals modelled as Laplace(0, adaptive scale) on every reachable difference."""
    scales = adaptive.scales()
    specs = []
    for _, part in quantizer.schema.slices():
        span = int(quantizer.high[part.start] - quantizer.low[part.start])
        specs.append(BlockSpec(-span, span, scales[part]))
    return specs


def _blocks(values: np.ndarray, specs: list[BlockSpec]) -> list[tuple[np.ndarray, BlockSpec]]:
    """Split a (size,) vector into per-group blocks matching ``specs``."""
    out, start = [], 0
    for spec in specs:
        out.append((values[start : start + spec.scales.size], spec))
        start += spec.scales.size
    return out
