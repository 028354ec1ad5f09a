"""Intra/inter frame coding shared by encoder and decoder, so both run the very same steps.

Intra frames code quantization indices directly; inter frames code the index residual against
the previously *decoded* frame. Prediction happens on integer indices, so the decoder's state
equals the encoder's exactly and there is no drift.
"""

from __future__ import annotations

import struct

import numpy as np

from codec.entropymodel import AdaptiveScales, BlockSpec, compress, decompress
from codec.errors import BitstreamError
from codec.quantizer import MIN_LEVEL, Quantizer, max_level
from codec.schema import FeatureSchema

INTRA_PREFIX = struct.Struct(">bH")  # rate level, symbol count


class PredictionState:
    """The reference frame (indices), its quantizer and the adaptive inter-frame scales."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self.quantizer: Quantizer | None = None
        self.reference: np.ndarray | None = None
        self._scales: AdaptiveScales | None = None

    def reconstruction(self) -> np.ndarray | None:
        """(size,) float32 features of the reference frame, None before the first intra."""
        if self.quantizer is None or self.reference is None:
            return None
        return self.quantizer.dequantize(self.reference)

    def encode_intra(self, features: np.ndarray, level: int) -> bytes:
        quantizer = Quantizer(self.schema, level)
        indices = quantizer.quantize(features)
        specs = _intra_specs(quantizer)
        payload = INTRA_PREFIX.pack(level, self.schema.size) + compress(_blocks(indices, specs))
        self._start(quantizer, indices)
        return payload

    def decode_intra(self, payload: bytes) -> np.ndarray:
        if len(payload) < INTRA_PREFIX.size:
            raise BitstreamError(f"intra payload of {len(payload)} bytes lacks its 3-byte prefix")
        level, count = INTRA_PREFIX.unpack_from(payload)
        if count != self.schema.size:
            raise BitstreamError(
                f"intra frame codes {count} values but the schema expects {self.schema.size}"
            )
        try:
            top = max_level(self.schema)
        except ValueError as exc:
            raise BitstreamError(f"unusable feature schema: {exc}") from exc
        if not MIN_LEVEL <= level <= top:
            raise BitstreamError(f"rate level {level} outside [{MIN_LEVEL}, {top}]")
        quantizer = Quantizer(self.schema, level)
        parts = decompress(payload[INTRA_PREFIX.size :], _intra_specs(quantizer))
        self._start(quantizer, np.concatenate(parts))
        return quantizer.dequantize(np.concatenate(parts))

    def encode_inter(self, features: np.ndarray) -> bytes:
        quantizer, reference, scales = self._require_reference()
        residual = quantizer.quantize(features) - reference
        payload = compress(_blocks(residual, _inter_specs(quantizer, scales)))
        self._advance(residual)
        return payload

    def decode_inter(self, payload: bytes) -> np.ndarray:
        quantizer, reference, scales = self._require_reference()
        residual = np.concatenate(decompress(payload, _inter_specs(quantizer, scales)))
        indices = reference + residual
        if np.any(indices < quantizer.low) or np.any(indices > quantizer.high):
            raise BitstreamError("inter frame decodes to values outside the schema range")
        self._advance(residual)
        return quantizer.dequantize(indices)

    def _require_reference(self) -> tuple[Quantizer, np.ndarray, AdaptiveScales]:
        if self.quantizer is None or self.reference is None or self._scales is None:
            raise RuntimeError("inter frame coded before any intra frame")
        return self.quantizer, self.reference, self._scales

    def _start(self, quantizer: Quantizer, indices: np.ndarray) -> None:
        self.quantizer = quantizer
        self.reference = indices
        spreads = _per_channel(self.schema, "inter_spread")
        self._scales = AdaptiveScales(spreads / quantizer.steps)

    def _advance(self, residual: np.ndarray) -> None:
        quantizer, reference, scales = self._require_reference()
        self.reference = reference + residual
        scales.update(residual)


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
