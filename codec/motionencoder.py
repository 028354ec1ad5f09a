"""MotionEncoder: per-frame feature vectors in, self-contained motion packets out."""

from __future__ import annotations

import numpy as np

from codec.packet import OVERHEAD, MotionPacket, pack_packet
from codec.prediction import PredictionState
from codec.quantizer import level_scale, max_level
from codec.ratecontrol import RateController, RateReport
from codec.schema import FeatureSchema, motion_schema


class MotionEncoder:
    """Quantizes, predicts and entropy-codes one feature vector per call into one packet.

    An intra frame is sent first, every ``intra_period`` frames and after ``request_intra()``;
    all other frames are inter frames predicted from the previous packet's decoded features.
    ``capture_time_ms`` should be milliseconds since the stream started: the packet carries it
    modulo 2**24 and the decoder unwraps it.
    """

    def __init__(
        self,
        schema: FeatureSchema | None = None,
        stream_id: int = 0,
        target_kbps: float | None = None,
        intra_period: int = 25,
        fps: float = 25.0,
        level: int = 0,
    ) -> None:
        if intra_period < 1:
            raise ValueError(f"intra_period must be at least 1, got {intra_period}")
        if not 0 <= stream_id <= 255:
            raise ValueError(f"stream_id {stream_id} not in 0..255")
        self.schema = schema or motion_schema()
        self.stream_id = stream_id
        self.intra_period = intra_period
        self.rate = RateController(
            target_kbps, fps, self.schema.size, level, max_level=max_level(self.schema)
        )
        self._state = PredictionState(self.schema)
        self._seq = 0
        self._since_intra = 0
        self._intra_requested = True
        self._packets = self._intra_packets = self._payload_bytes = 0

    def request_intra(self) -> None:
        """Make the next packet an intra frame (the receiver lost its reference)."""
        self._intra_requested = True

    def encode(self, features: np.ndarray, capture_time_ms: int, prompt_id: int = 0) -> bytes:
        """features: (schema.size,) float -> one packet (bytes)."""
        features = self._validated(features)
        intra = self._intra_requested or self._since_intra >= self.intra_period
        if intra:
            payload = self._state.encode_intra(features, self.rate.next_level())
        else:
            payload = self._state.encode_inter(features)
        packet = pack_packet(
            MotionPacket(self.stream_id, self._seq, capture_time_ms, intra, prompt_id, payload)
        )
        self._count(intra, len(payload))
        return packet

    @property
    def reconstruction(self) -> np.ndarray | None:
        """(schema.size,) float32: what the decoder outputs for the last packet."""
        return self._state.reconstruction()

    @property
    def stats(self) -> RateReport:
        return RateReport(
            packets=self._packets,
            intra_packets=self._intra_packets,
            payload_bytes=self._payload_bytes,
            header_bytes=OVERHEAD * self._packets,
            fps=self.rate.fps,
            level=self.rate.level,
            step_scale=level_scale(self.rate.level),
        )

    def _validated(self, features: np.ndarray) -> np.ndarray:
        array = np.asarray(features, dtype=np.float64)
        if array.shape != (self.schema.size,):
            raise ValueError(f"features must have shape ({self.schema.size},), got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError("features contain NaN or infinity")
        return array

    def _count(self, intra: bool, payload_bytes: int) -> None:
        self._seq += 1
        self._since_intra = 1 if intra else self._since_intra + 1
        self._intra_requested = False
        self._packets += 1
        self._intra_packets += int(intra)
        self._payload_bytes += payload_bytes
        self.rate.record(payload_bytes)
