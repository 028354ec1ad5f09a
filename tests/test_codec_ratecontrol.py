import argparse

import pytest

from codec import MotionDecoder, MotionEncoder
from codec.ratecontrol import RateController, parse_target_kbps
from tests.codec_samples import encode_all, synthetic_motion

FEATURES = synthetic_motion(300, seed=11)


def _run(target_kbps: float) -> MotionEncoder:
    encoder = MotionEncoder(target_kbps=target_kbps)
    encode_all(encoder, FEATURES)
    return encoder


def test_higher_target_gives_finer_steps_and_more_bytes():
    low, high = _run(1.0), _run(4.0)
    assert high.stats.step_scale < low.stats.step_scale
    assert high.stats.payload_bytes > low.stats.payload_bytes


@pytest.mark.parametrize("target", [1.5, 3.0])
def test_rate_settles_near_the_target(target):
    encoder = MotionEncoder(target_kbps=target)
    encode_all(encoder, FEATURES[:150])  # settle
    settled = encoder.stats
    encode_all(encoder, FEATURES[150:])
    final = encoder.stats
    sent = final.payload_bytes + final.header_bytes - settled.payload_bytes - settled.header_bytes
    assert 8 * sent / (150 / 25) / 1000 == pytest.approx(target, rel=0.35)  # headers included


def test_the_target_counts_the_headers_so_a_higher_frame_rate_codes_coarser():
    """At 30 fps the headers take 1.44 kbps of the target (1.2 at 25 fps): the payload gets
    less and the step is coarser, and the whole motion stays near the target at both rates."""
    totals, steps = [], []
    for fps in (25.0, 30.0):
        encoder = MotionEncoder(target_kbps=3.6, fps=fps)
        packets = encode_all(encoder, FEATURES, fps)
        totals.append(8 * sum(len(p) for p in packets[150:]) / (150 / fps) / 1000)
        steps.append(encoder.stats.step_scale)
    assert totals == pytest.approx([3.6, 3.6], rel=0.15)
    assert steps[1] > steps[0]


def test_reported_rate_matches_the_bytes_sent():
    encoder = MotionEncoder(target_kbps=2.0)
    packets = encode_all(encoder, FEATURES[:100])
    stats = encoder.stats
    total_bytes = sum(len(p) for p in packets)
    assert stats.payload_bytes + stats.header_bytes == total_bytes
    assert stats.total_kbps == pytest.approx(8 * total_bytes / 4.0 / 1000)
    assert stats.packets == 100 and stats.intra_packets == 4


def test_fixed_level_without_target():
    controller = RateController(None, 25.0, 60, level=3)
    controller.record(1000)
    assert controller.next_level() == 3
    with pytest.raises(ValueError, match="fps must be positive"):
        RateController(None, 0.0, 60)


def test_level_never_goes_past_the_schema_s_coarsest():
    controller = RateController(0.05, 25.0, 60, max_level=24)
    levels = []
    for _ in range(20):
        controller.record(100)
        levels.append(controller.next_level())
    assert levels[:6] == [4, 8, 12, 16, 20, 24] and set(levels[6:]) == {24}
    with pytest.raises(ValueError, match=r"rate level 25 outside \[-16, 24\]"):
        RateController(None, 25.0, 60, level=25, max_level=24)


def test_tiny_target_with_short_intra_period_codes_and_decodes():
    """``encode --target-kbps 0.05 --intra-period 5`` used to panic in the range coder."""
    encoder, decoder = MotionEncoder(target_kbps=0.05, intra_period=5), MotionDecoder()
    frames = [decoder.decode(encoder.encode(f, i * 40)) for i, f in enumerate(synthetic_motion(60))]
    assert all(f is not None for f in frames) and encoder.stats.level == 24


@pytest.mark.parametrize(("text", "expected"), [("2.7", 2.7), ("off", None), (" OFF ", None)])
def test_a_rate_target_option_reads_kbps_or_off(text: str, expected: float | None) -> None:
    assert parse_target_kbps(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "fast"])
def test_a_rate_target_option_refuses_what_is_not_a_positive_rate(text: str) -> None:
    with pytest.raises(
        argparse.ArgumentTypeError, match=f"expected a positive kbps or 'off', got {text!r}"
    ):
        parse_target_kbps(text)
