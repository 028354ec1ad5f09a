import hashlib

import numpy as np
import pytest

from codec import MotionDecoder, MotionEncoder, feature_map_schema, motion_schema
from codec.packet import unpack_packet
from codec.schema import KEYPOINT_STEP
from tests.codec_samples import encode_all, synthetic_motion

# sha256 of the concatenated packets of GOLDEN_SEQUENCE. If this changes, the bitstream format
# changed: bump codec.packet.VERSION and update the digest deliberately.
GOLDEN_SHA256 = "58bca74034025f84a826eb58372b0637566458f4e9af4630d7904ed92326b8de"
GOLDEN_BYTES = 752


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
    assert stats.header_bytes == 12 * 250
    assert 0.5 < stats.payload_kbps < 4.0
    assert stats.total_kbps == pytest.approx(stats.payload_kbps + 12 * 8 * 25 / 1000)


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
