"""x264 and x265 through PyAV in low-delay call settings: the anchors of `bench rd`.

Settings a video call would use: `tune=zerolatency` (no lookahead, no frame delay), no
B-frames, one intra frame at the start and none after (like this codec's single key frame),
constant QP so the sweep reaches the lowest rate each encoder can produce (QP 51).
The rate counts every NAL unit except SEI messages: x264 and x265 put their version and
option strings there (0.6 and 2.3 kB), which a call would not send.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, cast

import numpy as np

from bench.metrics import rate_point

if TYPE_CHECKING:
    from av.video.codeccontext import VideoCodecContext

    from bench.metrics import RatePoint

FPS = 25


@dataclass(frozen=True)
class Encoder:
    """One conventional codec: its PyAV encoder and decoder names and how to read its NALs."""

    name: str
    encoder: str
    decoder: str
    sei_types: frozenset[int]
    hevc_header: bool  # HEVC NAL type is bits 1..6 of the first byte, H.264's bits 0..4

    def nal_type(self, nal: bytes) -> int:
        return (nal[0] >> 1) & 0x3F if self.hevc_header else nal[0] & 0x1F


ENCODERS: dict[str, Encoder] = {
    "x264": Encoder("x264", "libx264", "h264", frozenset({6}), hevc_header=False),
    "x265": Encoder("x265", "libx265", "hevc", frozenset({39, 40}), hevc_header=True),
}
DEFAULT_QPS: tuple[int, ...] = (51, 48, 45, 42, 39, 36, 33, 30)
LOWEST_RATE_QP = 51  # the lowest rate x264 and x265 can produce
_START_CODE = re.compile(b"\x00\x00\x01")


def media_bytes(annexb: bytes, encoder: Encoder) -> int:
    """Bytes of the NAL units in an Annex-B packet, start codes and SEI messages left out."""
    starts = [m.end() for m in _START_CODE.finditer(annexb)]
    if not starts:
        raise ValueError(f"{encoder.name} packet has no Annex-B start code")
    ends = [m.start() for m in _START_CODE.finditer(annexb)][1:] + [len(annexb)]
    total = 0
    for start, end in zip(starts, ends, strict=True):
        # A 4-byte start code's leading zero sits at the end of the previous unit.
        nal = annexb[start:end].rstrip(b"\x00") if end < len(annexb) else annexb[start:end]
        if nal and encoder.nal_type(nal) not in encoder.sei_types:
            total += len(nal)
    return total


def encode_decode(
    frames: np.ndarray, encoder: Encoder, qp: int, preset: str = "medium"
) -> tuple[int, np.ndarray]:
    """Code NxHxWx3 uint8 RGB frames at constant ``qp``; return (media bytes, decoded frames)."""
    import av

    if not 0 <= qp <= 51:
        raise ValueError(f"QP must be in 0..51, got {qp}")
    count, height, width = frames.shape[:3]
    context = cast("VideoCodecContext", av.CodecContext.create(encoder.encoder, "w"))
    context.width, context.height = width, height
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, FPS)
    context.framerate = Fraction(FPS)
    context.gop_size = count + 1  # intra only on the first frame
    context.max_b_frames = 0
    options = {"qp": str(qp), "tune": "zerolatency", "preset": preset}
    if encoder.name == "x265":
        options["x265-params"] = f"bframes=0:keyint={count + 1}:log-level=error"
    context.options = options
    packets = []
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        packets.extend(context.encode(frame))
    packets.extend(context.encode(None))
    decoder = cast("VideoCodecContext", av.CodecContext.create(encoder.decoder, "r"))
    decoded = [f.to_ndarray(format="rgb24") for p in packets for f in decoder.decode(p)]
    decoded += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    if len(decoded) != count:
        raise RuntimeError(f"{encoder.name} returned {len(decoded)} frames for {count}")
    size = sum(media_bytes(bytes(p), encoder) for p in packets)
    return size, np.stack(decoded)


def measure_conventional(
    clip: str, frames: np.ndarray, codec: str, qp: int, preset: str = "medium", fps: float = FPS
) -> RatePoint:
    """Rate and mean quality of ``frames`` coded by ``codec`` (x264 or x265) at ``qp``."""

    size, decoded = encode_decode(frames, ENCODERS[codec], qp, preset=preset)
    return rate_point(clip, codec, f"qp={qp}", kbps(size, len(frames), fps), frames, decoded)


def kbps(num_bytes: int, num_frames: int, fps: float = FPS) -> float:
    return num_bytes * 8.0 / (num_frames / fps) / 1000.0


def check_qps(qps: Sequence[int]) -> list[int]:
    bad = [q for q in qps if not 0 <= q <= 51]
    if bad or not qps:
        raise ValueError(f"QPs must be integers in 0..51, got {list(qps)}")
    return sorted(set(qps), reverse=True)
