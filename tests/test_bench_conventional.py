"""x264/x265 low-delay coding through PyAV and the rate they are charged."""

from __future__ import annotations

import pytest

from bench.conventional import (
    ENCODERS,
    check_qps,
    encode_decode,
    kbps,
    measure_conventional,
    media_bytes,
)
from bench.metrics import psnr, video_metrics
from tests.bench_clip import moving_shapes


def test_encode_decode_returns_every_frame_close_to_input() -> None:
    frames = moving_shapes(frames=8, size=64)
    size, decoded = encode_decode(frames, ENCODERS["x265"], qp=20)
    assert decoded.shape == frames.shape
    assert psnr(frames, decoded).min() > 27.0  # 4:2:0 chroma of a noisy texture caps it
    assert size > 0


def test_measure_conventional_charges_the_media_bytes_at_the_clip_rate() -> None:
    frames = moving_shapes(frames=8, size=64)
    point = measure_conventional("shapes", frames, "x265", 51, fps=30.0)
    size, decoded = encode_decode(frames, ENCODERS["x265"], 51)
    assert (point.clip, point.codec, point.setting) == ("shapes", "x265", "qp=51")
    assert point.kbps == pytest.approx(kbps(size, 8, fps=30.0))
    assert point.ms_ssim == pytest.approx(video_metrics(frames, decoded)["ms_ssim"])


def test_media_bytes_leaves_out_start_codes_and_sei() -> None:
    sps = b"\x67" + b"\x11" * 9  # H.264 NAL type 7, 10 bytes
    sei = b"\x06" + b"\x22" * 99  # type 6, 100 bytes
    slice_ = b"\x65" + b"\x33" * 19  # type 5, 20 bytes
    stream = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + sei + b"\x00\x00\x00\x01" + slice_
    assert media_bytes(stream, ENCODERS["x264"]) == 30
    hevc_sei = bytes([39 << 1, 1]) + b"\x44" * 50
    hevc_slice = bytes([1 << 1, 1]) + b"\x55" * 10
    assert (
        media_bytes(b"\x00\x00\x01" + hevc_sei + b"\x00\x00\x01" + hevc_slice, ENCODERS["x265"])
        == 12
    )


def test_media_bytes_refuses_data_without_start_code() -> None:
    with pytest.raises(ValueError, match="no Annex-B start code"):
        media_bytes(b"\x65\x00\x10", ENCODERS["x264"])


def test_qps_outside_range_are_refused() -> None:
    with pytest.raises(ValueError, match="0..51"):
        check_qps([52])
    assert check_qps([30, 51, 30]) == [51, 30]
