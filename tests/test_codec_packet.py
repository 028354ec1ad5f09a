import pytest

from codec import BitstreamError
from codec.packet import (
    MAX_PACKET_BYTES,
    OVERHEAD,
    MotionPacket,
    pack_packet,
    unpack_packet,
    unwrap,
)

PACKET = MotionPacket(
    stream_id=7, seq=700, capture_time_ms=(1 << 16) + 5, intra=True, prompt_id=9, payload=b"xyz"
)


def test_header_is_six_bytes_and_round_trips_modulo_field_widths():
    data = pack_packet(PACKET)
    assert OVERHEAD == 6 and len(data) == 6 + 3
    # magic/version c3, stream 07, seq 700 % 256 = bc, time 5, intra | prompt 9, payload
    assert data.hex() == "c3" + "07" + "bc" + "0005" + "89" + b"xyz".hex()
    parsed = unpack_packet(data)
    assert parsed == MotionPacket(7, 700 % 256, 5, True, 9, b"xyz")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "packet of 0 bytes is shorter than the 6-byte minimum"),
        (pack_packet(PACKET)[:5], "packet of 5 bytes is shorter than"),
        (b"\xc3" + bytes(MAX_PACKET_BYTES), "exceeds the 4096-byte limit"),
        (b"\xa3" + bytes(5), "bad magic 0xa"),
        (b"\xc2" + bytes(5), "unsupported packet version 2 \\(this decoder reads 3\\)"),
        ("not bytes", "must be bytes"),
    ],
)
def test_bad_packets_raise_bitstream_error_saying_why(data, message):
    with pytest.raises(BitstreamError, match=message):
        unpack_packet(data)


def test_prompt_id_wraps_so_prompts_are_unlimited():
    """A call's 129th prompt (id 128) used to raise here and end the sender's motion task."""
    ids = [
        unpack_packet(pack_packet(MotionPacket(0, 0, 0, False, i, b""))).prompt_id
        for i in (127, 128, 1000)
    ]
    assert ids == [127, 0, 1000 % 128]


def test_out_of_range_fields_are_refused_when_packing():
    with pytest.raises(ValueError, match="prompt id -1 is negative"):
        pack_packet(MotionPacket(0, 0, 0, False, -1, b""))
    with pytest.raises(ValueError, match="stream id 256"):
        pack_packet(MotionPacket(256, 0, 0, False, 0, b""))


def test_unwrap_picks_the_nearest_congruent_value():
    assert unwrap(2, 254, 256) == 258
    assert unwrap(255, 257, 256) == 255
    assert unwrap(10, 0, 256) == 10
    assert unwrap(2, 65534, 65536) == 65538
