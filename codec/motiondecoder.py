"""MotionDecoder: packets from an unordered, lossy channel in, decoded feature frames out."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np

from codec.errors import BitstreamError
from codec.packet import SEQ_MODULUS, TIME_MODULUS, MotionPacket, unpack_packet, unwrap
from codec.prediction import (
    REFERENCE_WINDOW,
    Reference,
    decode_inter,
    decode_intra,
    inter_distance,
)
from codec.schema import FeatureSchema, motion_schema

# An intra this many frames (> 1 s) behind the last decoded one is a restarted sender, not a
# late packet (a data channel does not hold a packet back that long).
RESTART_GAP = 32


@dataclass(frozen=True)
class DecodedFrame:
    seq: int  # unwrapped sequence number
    capture_time_ms: int  # unwrapped sender capture time
    prompt_id: int
    intra: bool
    features: np.ndarray  # (schema.size,) float32
    concealed: bool = False  # made up by codec.concealment for a frame that did not arrive


@dataclass
class DecoderStats:
    """decoded: frames returned; dropped: reason -> count; malformed: packets that raised."""

    decoded: int = 0
    intra: int = 0
    malformed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class MotionDecoder:
    """Decodes packets in arrival order, dropping what cannot be decoded correctly.

    An inter frame decodes when the frame it names as its reference is among the last
    REFERENCE_WINDOW decoded ones, whatever was lost in between. Drop reasons counted in
    ``stats.dropped``: ``no_reference`` (inter before any intra), ``missing_reference`` (inter
    whose reference was not decoded), ``late`` (older than or equal to the last decoded frame),
    ``other_stream`` (stream id differs from ``stream_id``). Malformed packets raise
    BitstreamError and leave the decoder state untouched.
    """

    def __init__(self, schema: FeatureSchema | None = None, stream_id: int | None = None) -> None:
        self.schema = schema or motion_schema()
        self.stream_id = stream_id
        self.stats = DecoderStats()
        self._references: OrderedDict[int, Reference] = OrderedDict()  # seq -> decoded frame
        self._last_seq: int | None = None
        self._last_time = 0
        self._broken = True  # no reference yet: the sender's first packet should be intra

    @property
    def needs_intra(self) -> bool:
        """True from an undecodable inter frame until a frame decodes: ask for an intra."""
        return self._broken

    def decode(self, data: bytes) -> DecodedFrame | None:
        """One packet -> a frame, or None when dropped (reason counted in ``stats.dropped``)."""
        try:
            packet = unpack_packet(data)
            return self._decode_packet(packet)
        except BitstreamError:
            self.stats.malformed += 1
            raise

    def _decode_packet(self, packet: MotionPacket) -> DecodedFrame | None:
        if self.stream_id is not None and packet.stream_id != self.stream_id:
            self._drop("other_stream")
            return None
        seq = self._unwrapped_seq(packet)
        if packet.intra:
            return self._decode_intra(packet, seq)
        if self._last_seq is None:
            self._drop("no_reference", broken=True)
            return None
        if seq <= self._last_seq:
            self._drop("late")
            return None
        reference = self._references.get(seq - inter_distance(packet.payload))
        if reference is None:
            self._drop("missing_reference", broken=True)
            return None
        return self._accept(packet, seq, decode_inter(reference, packet.payload))

    def _decode_intra(self, packet: MotionPacket, seq: int) -> DecodedFrame | None:
        restart = self._last_seq is None or seq <= self._last_seq - RESTART_GAP
        if not restart and self._last_seq is not None and seq <= self._last_seq:
            self._drop("late")
            return None
        decoded = decode_intra(self.schema, packet.payload)
        self.stats.intra += 1
        if restart:  # first packet or restarted sender: take its numbers as the new base
            seq = packet.seq
            self._last_time = packet.capture_time_ms
            self._references.clear()
        return self._accept(packet, seq, decoded)

    def _accept(self, packet: MotionPacket, seq: int, decoded: Reference) -> DecodedFrame:
        capture_time = unwrap(packet.capture_time_ms, self._last_time, TIME_MODULUS)
        self._last_seq, self._last_time = seq, capture_time
        self._references[seq] = decoded
        while next(iter(self._references)) <= seq - REFERENCE_WINDOW:
            self._references.popitem(last=False)
        self._broken = False
        self.stats.decoded += 1
        features = decoded.reconstruction()
        return DecodedFrame(seq, capture_time, packet.prompt_id, packet.intra, features)

    def _unwrapped_seq(self, packet: MotionPacket) -> int:
        if self._last_seq is None:
            return packet.seq
        return unwrap(packet.seq, self._last_seq, SEQ_MODULUS)

    def _drop(self, reason: str, broken: bool = False) -> None:
        self.stats.dropped[reason] += 1
        self._broken = self._broken or broken
