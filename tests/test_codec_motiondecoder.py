import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import BitstreamError, MotionDecoder, MotionEncoder, motion_schema
from codec.packet import (
    MAGIC,
    SEQ_MODULUS,
    VERSION,
    MotionPacket,
    pack_packet,
    unpack_packet,
)
from tests.codec_samples import synthetic_motion

FEATURES = synthetic_motion(100, seed=5)


def _stream(intra_period: int = 25) -> tuple[list[bytes], list[np.ndarray]]:
    encoder = MotionEncoder(intra_period=intra_period)
    packets, references = [], []
    for index, vector in enumerate(FEATURES):
        packets.append(encoder.encode(vector, index * 40, prompt_id=1))
        references.append(encoder.reconstruction)
    return packets, references


PACKETS, REFERENCES = _stream()
RESTART = MotionEncoder().encode(FEATURES[0], 0)  # a new sender's first packet


def test_in_order_stream_decodes_everything_and_clears_needs_intra():
    decoder = MotionDecoder()
    assert decoder.needs_intra
    frames = [decoder.decode(p) for p in PACKETS]
    assert all(f is not None for f in frames)
    assert not decoder.needs_intra
    assert decoder.stats.decoded == 100 and decoder.stats.intra == 4


def test_loss_and_reordering_drop_unreferenced_frames_and_resync_at_intra():
    rng = np.random.default_rng(1234)
    kept = [i for i in range(len(PACKETS)) if rng.random() >= 0.2]
    order = list(kept)
    for i in range(0, len(order) - 1, 7):  # swap some neighbours
        order[i], order[i + 1] = order[i + 1], order[i]
    for last_before_intra in (24, 49, 74):  # arrives after the next intra: too late to use
        if last_before_intra in order and last_before_intra + 1 in order:
            order.remove(last_before_intra)
            order.insert(order.index(last_before_intra + 1) + 1, last_before_intra)
    decoder = MotionDecoder()
    decoded_seqs, raised_intra_flag = [], False
    for index in order:
        frame = decoder.decode(PACKETS[index])  # anything but BitstreamError would fail here
        raised_intra_flag |= decoder.needs_intra
        if frame is not None:
            assert frame.seq == index
            assert np.array_equal(frame.features, REFERENCES[index])  # never garbage
            decoded_seqs.append(index)
    dropped = decoder.stats.dropped
    assert dropped["missing_reference"] > 0 and dropped["late"] > 0
    assert decoder.stats.decoded + sum(dropped.values()) == len(order)
    assert raised_intra_flag
    intras_received = [i for i in kept if i % 25 == 0]
    assert set(intras_received) <= set(decoded_seqs)  # every intra resynchronizes


def test_intra_requests_bring_the_receiver_back():
    encoder, decoder = MotionEncoder(intra_period=1000), MotionDecoder()
    rng = np.random.default_rng(7)
    decoded = 0
    for index, vector in enumerate(synthetic_motion(200, seed=8)):
        packet = encoder.encode(vector, index * 40)
        if rng.random() < 0.2:
            continue
        decoded += decoder.decode(packet) is not None
        if decoder.needs_intra:
            encoder.request_intra()
    assert decoder.stats.intra > 1
    assert decoded > 100


def _feedback_call(loss: float, seed: int, ack_delay: int = 2, frames: int = 300):
    """Code ``frames`` with feedback, lose ``loss`` of the packets at random and acknowledge
    each decoded frame ``ack_delay`` frames later; never request an intra."""
    encoder, decoder = MotionEncoder(intra_period=1000, feedback=True), MotionDecoder()
    rng = np.random.default_rng(seed)
    acks: dict[int, list[int]] = {}
    arrived, decoded = [], []
    for index, vector in enumerate(synthetic_motion(frames, seed=seed)):
        for seq in acks.pop(index, []):
            encoder.acknowledge(seq)
        packet = encoder.encode(vector, index * 40)
        expected = encoder.reconstruction
        if index and rng.random() < loss:  # the first intra arrives: nothing to wait for
            continue
        arrived.append(index)
        frame = decoder.decode(packet)
        assert frame is not None and frame.seq == index
        assert expected is not None
        assert np.array_equal(frame.features, expected)  # exact, whatever was lost before
        decoded.append(index)
        acks.setdefault(index + ack_delay, []).append(frame.seq % SEQ_MODULUS)
    return arrived, decoded, decoder


@pytest.mark.parametrize(("loss", "seed"), [(0.1, 1), (0.3, 2), (0.5, 3)])
def test_with_feedback_every_arriving_frame_decodes_after_random_losses(loss, seed):
    arrived, decoded, decoder = _feedback_call(loss, seed)
    assert decoded == arrived
    assert len(arrived) < 300  # something was lost
    assert decoder.stats.intra == 1 and not decoder.stats.dropped
    assert not decoder.needs_intra


def test_with_feedback_a_lost_periodic_intra_costs_only_itself():
    encoder, decoder = MotionEncoder(intra_period=10, feedback=True), MotionDecoder()
    vectors = synthetic_motion(20, seed=9)
    for index, vector in enumerate(vectors):
        packet = encoder.encode(vector, index * 40)
        if index == 10:
            assert unpack_packet(packet).intra
            continue  # lost
        frame, expected = decoder.decode(packet), encoder.reconstruction
        assert frame is not None and expected is not None
        assert np.array_equal(frame.features, expected)
        if index < 10:
            encoder.acknowledge(index)
    assert decoder.stats.decoded == 19


def test_an_acknowledgement_of_a_frame_never_decoded_costs_one_intra_request():
    encoder, decoder = MotionEncoder(intra_period=1000, feedback=True), MotionDecoder()
    vectors = synthetic_motion(8, seed=10)
    decoder.decode(encoder.encode(vectors[0], 0))
    encoder.encode(vectors[1], 40)  # lost, yet acknowledged by mistake
    assert encoder.acknowledge(1)
    assert decoder.decode(encoder.encode(vectors[2], 80)) is None
    assert decoder.stats.dropped["missing_reference"] == 1 and decoder.needs_intra
    encoder.request_intra()  # what the receiver asks for
    for index in range(3, 8):
        frame = decoder.decode(encoder.encode(vectors[index], index * 40))
        assert frame is not None and frame.intra == (index == 3)
        encoder.acknowledge(index)
    assert not decoder.needs_intra


def test_missing_reference_asks_for_intra_until_a_frame_decodes():
    decoder = MotionDecoder()
    decoder.decode(PACKETS[0])
    assert decoder.decode(PACKETS[2]) is None  # its reference, frame 1, was lost
    assert decoder.stats.dropped["missing_reference"] == 1 and decoder.needs_intra
    assert decoder.decode(PACKETS[25]) is not None and not decoder.needs_intra


@pytest.mark.parametrize("distance", [0, 33, 255])
def test_reference_distance_outside_the_window_is_refused(distance):
    decoder = MotionDecoder()
    decoder.decode(PACKETS[0])
    body = unpack_packet(PACKETS[1])
    bad = pack_packet(MotionPacket(0, 1, 40, False, 1, bytes([distance]) + body.payload[1:]))
    with pytest.raises(BitstreamError, match=rf"reference distance {distance} not in 1..32"):
        decoder.decode(bad)
    assert decoder.decode(PACKETS[1]) is not None  # state untouched


def test_inter_before_any_intra_is_dropped_and_asks_for_intra():
    decoder = MotionDecoder()
    assert decoder.decode(PACKETS[1]) is None
    assert decoder.stats.dropped["no_reference"] == 1 and decoder.needs_intra


def test_duplicate_and_late_intra_are_dropped():
    decoder = MotionDecoder()
    for packet in PACKETS[:30]:
        decoder.decode(packet)
    assert decoder.decode(PACKETS[25]) is None
    assert decoder.decode(PACKETS[29]) is None
    assert decoder.stats.dropped["late"] == 2


def test_restarted_sender_is_followed():
    decoder = MotionDecoder()
    for packet in PACKETS:
        decoder.decode(packet)
    encoder = MotionEncoder()
    restarted = [encoder.encode(v, 0) for v in FEATURES[:2]]
    frame = decoder.decode(restarted[0])
    assert frame is not None and frame.seq == 0 and frame.intra
    assert decoder.decode(restarted[1]) is not None


def test_other_stream_ids_are_ignored():
    decoder = MotionDecoder(stream_id=3)
    assert decoder.decode(PACKETS[0]) is None
    assert decoder.stats.dropped["other_stream"] == 1


def test_decoder_stays_usable_after_malformed_packets():
    decoder = MotionDecoder()
    decoder.decode(PACKETS[0])
    no_distance = PACKETS[1][:6] + b"\x00" + PACKETS[1][7:]  # reference distance 0
    for bad in (b"", PACKETS[1][:5], b"\x00" * 40, no_distance):
        with pytest.raises(BitstreamError):
            decoder.decode(bad)
    frame = decoder.decode(PACKETS[1])
    assert frame is not None and np.array_equal(frame.features, REFERENCES[1])
    assert decoder.stats.malformed == 4


def test_valid_crc_with_wrong_symbol_count_is_refused():
    payload = struct.pack(">bH", 0, 59) + b"\x12\x34"
    packet = pack_packet(MotionPacket(0, 0, 0, True, 0, payload))
    with pytest.raises(BitstreamError, match="codes 59 values but the schema expects 60"):
        MotionDecoder().decode(packet)
    bad_level = pack_packet(MotionPacket(0, 0, 0, True, 0, struct.pack(">bH", 99, 60)))
    with pytest.raises(BitstreamError, match="rate level 99"):
        MotionDecoder().decode(bad_level)


@pytest.mark.parametrize("level", [25, 32, 40])
def test_rate_level_that_collapses_a_group_is_refused_before_entropy_decoding(level):
    """Levels 25..40 pass the global bound but leave the Jacobians one index value; the range
    coder used to panic on that (a BaseException that ended the call)."""
    payload = struct.pack(">bH", level, 60) + bytes(range(16))
    packet = pack_packet(MotionPacket(0, 0, 0, True, 0, payload))
    decoder = MotionDecoder()
    with pytest.raises(BitstreamError, match=rf"rate level {level} outside \[-16, 24\]"):
        decoder.decode(packet)
    assert decoder.stats.malformed == 1 and decoder.needs_intra
    assert decoder.decode(PACKETS[0]) is not None


fuzz_inputs = st.one_of(
    st.binary(max_size=120),
    st.tuples(st.sampled_from(PACKETS[:30]), st.integers(0, 8 * 200), st.integers(0, 200)).map(
        lambda t: bytes(
            b ^ (1 << (t[1] % 8)) if i == t[1] // 8 else b for i, b in enumerate(t[0][: t[2]])
        )
    ),
    # a valid header, so the payload reaches the entropy decoder: intra with any seq, or
    # inter frame 3 naming any reference distance (frames 0-2 decoded)
    st.tuples(st.booleans(), st.integers(0, 255), st.integers(0, 40), st.binary(max_size=40)).map(
        lambda t: (
            bytes([MAGIC << 4 | VERSION, 0, t[1] if t[0] else 3])
            + b"\x00\x01"
            + bytes([0x80 if t[0] else 0])
            + (struct.pack(">bH", 0, 60) if t[0] else bytes([t[2]]))
            + t[3]
        )
    ),
)


@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=fuzz_inputs)
def test_fuzz_any_bytes_give_a_frame_a_drop_or_bitstream_error(data):
    decoder = MotionDecoder()
    for packet in PACKETS[:3]:
        decoder.decode(packet)
    try:
        frame = decoder.decode(data)
    except BitstreamError as exc:
        assert str(exc)
    else:
        if frame is not None:
            assert frame.features.shape == (60,) and np.all(np.isfinite(frame.features))
            assert np.all(np.abs(frame.features) <= 4.0)
    after = decoder.decode(RESTART)
    assert after is None or np.array_equal(after.features, REFERENCES[0])


def test_schema_mismatch_between_ends_is_an_error_not_a_crash():
    decoder = MotionDecoder(motion_schema(num_kp=5))
    with pytest.raises(BitstreamError, match="schema expects 30"):
        decoder.decode(PACKETS[0])
