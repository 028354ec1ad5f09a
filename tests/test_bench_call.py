"""bench call: a short real loopback call on the tiny preset, with and without packet loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.call import DroppingChannel, check_losses
from codec import MotionEncoder
from codec.packet import SEQ_MODULUS
from pipeline import protocol
from tests.bench_clip import run_bench
from tests.codec_samples import synthetic_motion


class RecordingChannel:
    readyState = "open"  # noqa: N815 (aiortc's name)

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def test_dropping_channel_loses_about_the_asked_fraction_and_notes_distances() -> None:
    inner = RecordingChannel()
    channel = DroppingChannel(inner, loss=0.25, seed=3)
    encoder = MotionEncoder(intra_period=1000, feedback=True)
    for index, vector in enumerate(synthetic_motion(2000)):
        if index >= 3:
            encoder.acknowledge((index - 3) % SEQ_MODULUS)  # three frames' round trip
        channel.send(encoder.encode(vector, index * 40))
    assert channel.dropped + len(inner.sent) == 2000
    assert 0.22 < channel.dropped / 2000 < 0.28
    assert channel.readyState == "open"
    assert channel.distances == [1, 2] + [3] * 1996  # intras 0 and 1000 have none
    channel.send(protocol.encode_ack(7))  # acknowledgements pass, never lost or counted
    assert inner.sent[-1] == protocol.encode_ack(7) and len(channel.distances) == 1998


def test_losses_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\)"):
        check_losses([0.1, 1.0])
    assert check_losses([0.3, 0.0, 0.3]) == [0.0, 0.3]


@pytest.fixture(scope="module")
def call_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("call")
    argv = ["bench", "call", "--preset", "tiny", "--seconds", "2.5", "--fps", "10"]
    argv += ["--loss", "0", "0.5", "--clips", str(out / "none"), "--out", str(out)]
    assert run_bench(argv) == 0
    return json.loads((out / "call.json").read_text())


def test_call_reports_both_directions_per_loss(call_result: dict) -> None:
    rows = call_result["tables"]["call"]["rows"]
    assert [(r["render"], r["loss"], r["direction"]) for r in rows] == [
        (render, loss, direction)
        for render in ("server", "local")
        for loss in (0.0, 0.5)
        for direction in ("alice -> bob", "bob -> alice")
    ]
    for row in rows:
        assert row["frames_sent"] > 5 and row["frames_shown"] > 0
        assert row["latency_p50_ms"] <= row["latency_p95_ms"] <= row["latency_p99_ms"]
        assert row["uplink_motion_kbps"] > 0
        assert row["av_offset_p50_ms"] is not None  # both send the synthetic sound
    lossless, lossy = rows[0], rows[2]
    assert lossless["dropped"] == 0 and lossy["dropped"] > 0
    relayed = rows[4]  # lossless, rendered by bob: motion comes down, not video
    assert 0 < relayed["downlink_kbps"] < lossless["downlink_kbps"]
    # lost frames are concealed (shown, marked) and never counted as decoded
    assert lossy["concealed"] > 0
    assert lossy["decoded_share"] * lossy["frames_sent"] == pytest.approx(
        lossy["frames_shown"] - lossy["concealed"]
    )
    assert lossy["longest_decoded_gap_ms"] >= lossy["longest_freeze_ms"]
    assert 1 <= lossy["ref_distance_p50"] <= lossy["ref_distance_p95"] <= 32
    assert call_result["inputs"] == {"alice": "synthetic", "bob": "synthetic"}


def test_call_writes_machine_and_plot(call_result: dict) -> None:
    assert call_result["machine"]["cpu_cores"] >= 1
    (plot,) = call_result["plots"]
    assert Path(plot).read_bytes()[:4] == b"\x89PNG"
