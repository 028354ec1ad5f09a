"""Entropy coding of integer symbols with constriction's range coder and quantized Laplaces.

Kept apart from prediction and packets (CompressAI style): callers hand in blocks of symbols
together with the per-symbol Laplace scale and the inclusive symbol range, and get bytes back.
``AdaptiveScales`` is the per-channel scale state that encoder and decoder update identically
from decoded residuals, in integer arithmetic so both sides agree bit for bit on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from codec.errors import BitstreamError

MIN_SCALE = 0.2  # quantized units; keeps a channel that stood still from costing ~24 bits on a jump

# Integer EMA of |residual|: acc <- acc - acc/2**DECAY_SHIFT + |r| * 2**FRACTION_BITS, so in the
# steady state acc = 2**(DECAY_SHIFT + FRACTION_BITS) * mean|r| and mean|r| is the Laplace scale.
DECAY_SHIFT = 3
FRACTION_BITS = 8
_ACC_ONE = 1 << (DECAY_SHIFT + FRACTION_BITS)


@dataclass(frozen=True)
class BlockSpec:
    """How one block of ``scales.size`` symbols is modelled: Laplace(0, scale) on [low, high]."""

    low: int
    high: int
    scales: np.ndarray

    def __post_init__(self) -> None:
        # constriction panics (a BaseException) on a range of one value: refuse it here
        if not self.low < self.high:
            raise ValueError(f"symbol range [{self.low}, {self.high}] needs two values or more")


def _laplace(spec: BlockSpec) -> tuple[object, np.ndarray, np.ndarray]:
    model = constriction.stream.model.QuantizedLaplace(spec.low, spec.high)
    scales = np.maximum(spec.scales.astype(np.float64), MIN_SCALE)
    return model, np.zeros_like(scales), scales


def _encode_words(blocks: list[tuple[np.ndarray, BlockSpec]]) -> bytes:
    encoder = constriction.stream.queue.RangeEncoder()
    for symbols, spec in blocks:
        model, means, scales = _laplace(spec)
        encoder.encode(symbols.astype(np.int32), model, means, scales)
    return encoder.get_compressed().astype(">u4").tobytes()


def _decode_words(data: bytes, specs: list[BlockSpec]) -> list[np.ndarray]:
    padded = data + b"\x00" * (-len(data) % 4)
    words = np.frombuffer(padded, dtype=">u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    out = []
    for spec in specs:
        model, means, scales = _laplace(spec)
        out.append(np.asarray(decoder.decode(model, means, scales), dtype=np.int64))
    return out


def compress(blocks: list[tuple[np.ndarray, BlockSpec]]) -> bytes:
    """Range-code the blocks in order; returns the shortest byte string that decodes back.

    The range coder emits whole 32-bit words, and the decoder pads a short message with zero
    bytes. Any number inside the final coding interval decodes the same, so the encoder cuts
    trailing bytes (rounding the kept prefix up when needed) as long as a trial decode still
    returns exactly the same symbols: lossless by construction, ~1.5 bytes saved per message.
    """
    for symbols, spec in blocks:
        if symbols.shape != spec.scales.shape:
            raise ValueError(f"{symbols.size} symbols but {spec.scales.size} scales")
        if symbols.size and (symbols.min() < spec.low or symbols.max() > spec.high):
            raise ValueError(f"symbols outside the model range [{spec.low}, {spec.high}]")
    data = _encode_words(blocks)
    specs = [spec for _, spec in blocks]
    expected = [symbols.astype(np.int64) for symbols, _ in blocks]
    while data:
        shorter = _shorter_equivalent(data, specs, expected)
        if shorter is None:
            break
        data = shorter
    return data


def _shorter_equivalent(
    data: bytes, specs: list[BlockSpec], expected: list[np.ndarray]
) -> bytes | None:
    """``data`` minus its last byte, kept prefix as is or rounded up, if it still decodes."""
    keep = len(data) - 1
    prefix = int.from_bytes(data[:keep], "big")
    for candidate in (prefix, prefix + 1):
        if candidate >= 1 << (8 * keep):
            continue
        shorter = candidate.to_bytes(keep, "big")
        try:
            if _same(decompress(shorter, specs), expected):
                return shorter
        except BitstreamError:
            continue
    return None


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def decompress(data: bytes, specs: list[BlockSpec]) -> list[np.ndarray]:
    """Decode one int64 array per spec (its length is ``spec.scales.size``)."""
    try:
        return _decode_words(data, specs)
    # constriction reports compressed data that no symbol sequence produces as AssertionError
    except (AssertionError, ValueError, RuntimeError, OverflowError) as exc:
        raise BitstreamError(f"entropy decoding failed: {exc}") from exc
    except BaseException as exc:
        # Last line of defence: a Rust panic in constriction is a pyo3 PanicException, which
        # derives from BaseException only and cannot be imported; anything else propagates.
        if type(exc).__name__ != "PanicException":
            raise
        raise BitstreamError(f"entropy decoding failed: the range coder panicked: {exc}") from exc


class AdaptiveScales:
    """Per-channel Laplace scales (quantized units) tracking recently decoded residuals."""

    def __init__(self, initial: np.ndarray) -> None:
        """initial: (C,) starting scales in quantized units."""
        self._acc = np.rint(np.asarray(initial, dtype=np.float64) * _ACC_ONE).astype(np.int64)

    def copy(self) -> AdaptiveScales:
        """An independent copy: each reference frame keeps the scales that follow it."""
        twin = AdaptiveScales.__new__(AdaptiveScales)
        twin._acc = self._acc.copy()
        return twin

    def scales(self) -> np.ndarray:
        return self._acc / _ACC_ONE

    def update(self, residuals: np.ndarray) -> None:
        """residuals: (C,) int64 decoded residuals of the frame just coded."""
        magnitude = np.minimum(np.abs(residuals), 1 << 24) << FRACTION_BITS
        self._acc = self._acc - (self._acc >> DECAY_SHIFT) + magnitude
