"""MotionEncoder: per-frame feature vectors in, self-contained motion packets out."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from codec.packet import OVERHEAD, SEQ_MODULUS, MotionPacket, pack_packet, unwrap
from codec.prediction import REFERENCE_WINDOW, Reference, encode_inter, encode_intra
from codec.quantizer import level_scale, max_level
from codec.ratecontrol import RateController, RateReport
from codec.schema import FeatureSchema, motion_schema


class MotionEncoder:
    """Quantizes, predicts and entropy-codes one feature vector per call into one packet.

    An intra frame is sent first, every ``intra_period`` frames and after ``request_intra()``;
    all other frames are inter frames. Without ``feedback`` each is predicted from the previous
    frame, so a loss breaks the chain until the next intra (the ``.ccv`` files). With
    ``feedback`` each is predicted from the newest frame the receiver acknowledged
    (``acknowledge``) in the last REFERENCE_WINDOW frames, else from the last intra: a lost
    packet costs that frame only. ``capture_time_ms`` should be milliseconds since the stream
    started: the packet carries it modulo 2**16 and the decoder unwraps it.
    """

    def __init__(
        self,
        schema: FeatureSchema | None = None,
        stream_id: int = 0,
        target_kbps: float | None = None,
        intra_period: int = 25,
        fps: float = 25.0,
        level: int = 0,
        feedback: bool = False,
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
        self.feedback = feedback
        self._references: OrderedDict[int, Reference] = OrderedDict()  # seq -> coded frame
        self._last: Reference | None = None
        self._intra_seq: int | None = None
        self._acked: int | None = None
        self._ack_floor = 0  # acknowledgements of earlier frames predate a requested intra
        self._seq = 0
        self._since_intra = 0
        self._intra_requested = True
        self._packets = self._intra_packets = self._payload_bytes = 0

    def request_intra(self) -> None:
        """Make the next packet an intra frame (the receiver lost its reference).

        With feedback, the receiver's earlier acknowledgements are forgotten as well (it may be
        a new receiver): frames predict from that intra until it or a later frame is acked.
        """
        self._intra_requested = True

    def acknowledge(self, seq: int) -> bool:
        """The receiver decoded frame ``seq`` (its number mod 2**8, as the packet carried it).

        Returns whether later frames now predict from it; False for frames no longer held
        (older than REFERENCE_WINDOW frames, or than a requested intra) or older than the
        newest acknowledged one. A frame not sent yet raises ValueError saying so.
        """
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < SEQ_MODULUS:
            raise ValueError(f"acknowledged frame number {seq!r} not in 0..{SEQ_MODULUS - 1}")
        if self._seq == 0:
            raise ValueError(f"acknowledgement of frame {seq} before any frame was sent")
        frame = unwrap(seq, self._seq - 1, SEQ_MODULUS)
        if frame >= self._seq:
            raise ValueError(
                f"acknowledgement of frame {frame}, which was not sent (last sent: {self._seq - 1})"
            )
        if frame < self._ack_floor or frame not in self._references:
            return False
        if self._acked is not None and frame <= self._acked:
            return False
        self._acked = frame
        return True

    def encode(self, features: np.ndarray, capture_time_ms: int, prompt_id: int = 0) -> bytes:
        """features: (schema.size,) float -> one packet (bytes)."""
        features = self._validated(features)
        due = self._intra_requested or self._since_intra >= self.intra_period
        reference = None if due else self._reference_seq()
        intra = reference is None
        if reference is None:
            payload, coded = encode_intra(self.schema, features, self.rate.next_level())
        else:
            distance = self._seq - reference
            payload, coded = encode_inter(self._references[reference], distance, features)
        packet = pack_packet(
            MotionPacket(self.stream_id, self._seq, capture_time_ms, intra, prompt_id, payload)
        )
        self._keep(coded, intra)
        self._count(intra, len(payload))
        return packet

    @property
    def acknowledged(self) -> int | None:
        """The newest acknowledged frame later frames predict from (None: the last intra)."""
        return self._acked

    @property
    def reconstruction(self) -> np.ndarray | None:
        """(schema.size,) float32: what the decoder outputs for the last packet."""
        return None if self._last is None else self._last.reconstruction()

    def _reference_seq(self) -> int | None:
        """The frame the next inter frame predicts from; None when none is held."""
        if not self.feedback:
            candidates = [self._seq - 1]
        else:
            candidates = [seq for seq in (self._acked, self._intra_seq) if seq is not None]
        return next((seq for seq in candidates if seq in self._references), None)

    def _keep(self, coded: Reference, intra: bool) -> None:
        if intra:
            self._intra_seq = self._seq
            if self._intra_requested:
                self._acked, self._ack_floor = None, self._seq
        self._last = self._references[self._seq] = coded
        while next(iter(self._references)) <= self._seq - REFERENCE_WINDOW:
            self._references.popitem(last=False)

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
        self.rate.record(payload_bytes + OVERHEAD)
