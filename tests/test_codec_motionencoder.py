import hashlib

import numpy as np
import pytest

from codec import MotionDecoder, MotionEncoder, feature_map_schema, motion_schema
from codec.packet import unpack_packet
from codec.schema import KEYPOINT_STEP
from tests.codec_samples import encode_all, synthetic_motion

# sha256 of the concatenated packets of GOLDEN_SEQUENCE. If this changes, the bitstream format
# changed: bump codec.packet.VERSION and update the digest deliberately.
GOLDEN_SHA256 = "56a032d43956e63cbe5a622b377b1923204b427a1f037bf3a748a5457f805308"
GOLDEN_BYTES = 599
# The same with feedback: frame i - 2 acknowledged before frame i, except every third frame.
GOLDEN_FEEDBACK_SHA256 = "71a19a7dfe535ccfdf81644570b008124ff0156619869f98ca390b39bff22388"
GOLDEN_FEEDBACK_BYTES = 648


def test_encoder_reconstruction_equals_decoder_output_bit_exactly():
    features = synthetic_motion(60, seed=1)
    encoder, decoder = MotionEncoder(intra_period=25), MotionDecoder()
    for index, vector in enumerate(features):
        frame = decoder.decode(encoder.encode(vector, index * 40, prompt_id=2))
        assert frame is not None
        assert frame.features.dtype == np.float32
        assert np.array_equal(frame.features, encoder.reconstruction)
        assert (frame.seq, frame.capture_time_ms, frame.prompt_id) == (index, index * 40, 2)


def test_quantized_values_survive_a_second_coding_unchanged():
    first = MotionEncoder()
    decoded = []
    for index, vector in enumerate(synthetic_motion(30, seed=2)):
        first.encode(vector, index * 40)
        decoded.append(first.reconstruction)
    second = MotionEncoder()
    for index, vector in enumerate(decoded):
        second.encode(vector, index * 40)
        assert np.array_equal(second.reconstruction, vector)


def test_keypoint_error_is_at_most_half_a_step():
    features = synthetic_motion(50, seed=3)
    encoder = MotionEncoder()
    for index, vector in enumerate(features):
        encoder.encode(vector, index * 40)
        error = np.abs(encoder.reconstruction - vector)
        assert error[:20].max() <= KEYPOINT_STEP / 2 + 1e-6


def test_golden_output():
    encoder = MotionEncoder(intra_period=10)
    packets = encode_all(encoder, synthetic_motion(30, seed=42))
    data = b"".join(packets)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (GOLDEN_BYTES, GOLDEN_SHA256)


def test_golden_output_with_feedback():
    encoder = MotionEncoder(intra_period=10, feedback=True)
    packets = []
    for index, vector in enumerate(synthetic_motion(30, seed=42)):
        if index >= 2 and index % 3:
            assert encoder.acknowledge(index - 2)
        packets.append(encoder.encode(vector, index * 40, prompt_id=3))
    data = b"".join(packets)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (
        GOLDEN_FEEDBACK_BYTES,
        GOLDEN_FEEDBACK_SHA256,
    )


def _distance(packet: bytes) -> int:
    """An inter packet's reference distance (its payload's first byte)."""
    parsed = unpack_packet(packet)
    assert not parsed.intra
    return parsed.payload[0]


def test_without_feedback_every_inter_frame_predicts_from_the_previous_one():
    packets = encode_all(MotionEncoder(intra_period=5), synthetic_motion(5))
    assert [_distance(p) for p in packets[1:]] == [1, 1, 1, 1]


def test_feedback_predicts_from_the_newest_acknowledged_frame_else_the_last_intra():
    encoder = MotionEncoder(intra_period=8, feedback=True)
    vectors = synthetic_motion(12, seed=6)
    encoder.encode(vectors[0], 0)  # intra 0
    assert _distance(encoder.encode(vectors[1], 40)) == 1  # frame 1 <- intra 0
    assert _distance(encoder.encode(vectors[2], 80)) == 2  # frame 2 <- intra 0
    assert encoder.acknowledged is None
    assert encoder.acknowledge(1)
    assert not encoder.acknowledge(0)  # older than the newest acknowledgement
    assert encoder.acknowledged == 1
    assert _distance(encoder.encode(vectors[3], 120)) == 2  # frame 3 <- frame 1
    assert encoder.acknowledge(3)
    for index in range(4, 8):
        assert _distance(encoder.encode(vectors[index], index * 40)) == index - 3
    assert unpack_packet(encoder.encode(vectors[8], 320)).intra  # periodic intra 8
    # a lost periodic intra must not cost the frames after it: they keep frame 3
    assert _distance(encoder.encode(vectors[9], 360)) == 6


def test_a_requested_intra_forgets_earlier_acknowledgements():
    encoder = MotionEncoder(intra_period=100, feedback=True)
    vectors = synthetic_motion(6, seed=7)
    for index in range(3):
        encoder.encode(vectors[index], index * 40)
    assert encoder.acknowledge(2)
    encoder.request_intra()
    assert unpack_packet(encoder.encode(vectors[3], 120)).intra  # frame 3
    assert encoder.acknowledged is None
    assert not encoder.acknowledge(2)  # from before the request: maybe another receiver's
    assert _distance(encoder.encode(vectors[4], 160)) == 1  # frame 4 <- intra 3
    assert encoder.acknowledge(4)
    assert _distance(encoder.encode(vectors[5], 200)) == 1  # frame 5 <- frame 4


def test_acknowledgements_older_than_the_window_are_ignored_and_fall_back_to_intra():
    encoder = MotionEncoder(intra_period=1000, feedback=True)
    vectors = synthetic_motion(40, seed=8)
    encoder.encode(vectors[0], 0)
    encoder.encode(vectors[1], 40)
    assert encoder.acknowledge(1)
    flags = [unpack_packet(encoder.encode(v, i * 40)).intra for i, v in enumerate(vectors[2:])]
    assert flags.index(True) == 32  # frame 34: frame 1 and intra 0 have left the window
    assert not encoder.acknowledge(1)  # no longer held


@pytest.mark.parametrize(
    ("seq", "message"),
    [
        (5, "acknowledgement of frame 5, which was not sent \\(last sent: 2\\)"),
        (-1, "not in 0..255"),
        (256, "not in 0..255"),
        (True, "not in 0..255"),
        ("3", "not in 0..255"),
    ],
)
def test_acknowledging_frames_never_sent_is_refused_saying_why(seq, message):
    encoder = MotionEncoder(feedback=True)
    for index, vector in enumerate(synthetic_motion(3)):
        encoder.encode(vector, index * 40)
    with pytest.raises(ValueError, match=message):
        encoder.acknowledge(seq)
    assert _distance(encoder.encode(synthetic_motion(4)[3], 120)) == 3  # still the intra


def test_acknowledgement_before_any_frame_is_refused():
    with pytest.raises(ValueError, match="before any frame was sent"):
        MotionEncoder(feedback=True).acknowledge(0)


def test_intra_every_period_and_on_request():
    encoder = MotionEncoder(intra_period=5)
    flags = [unpack_packet(p).intra for p in encode_all(encoder, synthetic_motion(12))]
    assert flags == [True, False, False, False, False] * 2 + [True, False]
    encoder.request_intra()
    assert unpack_packet(encoder.encode(synthetic_motion(1)[0], 0)).intra
    assert encoder.stats.intra_packets == 4


def test_other_fixed_size_features_use_the_same_coder():
    schema = feature_map_schema(channels=3)
    rng = np.random.default_rng(0)
    maps = np.cumsum(rng.normal(0, 0.05, (20, schema.size)), 0).astype(np.float32)
    encoder, decoder = MotionEncoder(schema), MotionDecoder(schema)
    for index, vector in enumerate(maps):
        frame = decoder.decode(encoder.encode(vector, index))
        assert frame is not None and np.array_equal(frame.features, encoder.reconstruction)


def test_default_payload_is_a_few_kbps_on_smooth_motion():
    encoder = MotionEncoder()
    encode_all(encoder, synthetic_motion(250, seed=4))
    stats = encoder.stats
    assert stats.header_bytes == 6 * 250
    assert 0.5 < stats.payload_kbps < 4.0
    assert stats.total_kbps == pytest.approx(stats.payload_kbps + 6 * 8 * 25 / 1000)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.zeros(59), r"shape \(60,\)"),
        (np.full(60, np.nan), "NaN or infinity"),
    ],
)
def test_bad_features_are_refused(features, message):
    with pytest.raises(ValueError, match=message):
        MotionEncoder().encode(features, 0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="intra_period"):
        MotionEncoder(intra_period=0)
    with pytest.raises(ValueError, match="target_kbps"):
        MotionEncoder(target_kbps=-1)
    assert MotionEncoder(motion_schema(num_kp=4)).schema.size == 24
