import struct
import zlib

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
    stream_id=7, seq=70000, capture_time_ms=(1 << 24) + 5, intra=True, prompt_id=9, payload=b"xyz"
)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_header_plus_crc_is_twelve_bytes_and_round_trips_modulo_field_widths():
    data = pack_packet(PACKET)
    assert OVERHEAD == 12 and len(data) == 12 + 3
    assert data[:8].hex() == "c2071170000005" + "89"
    parsed = unpack_packet(data)
    assert parsed == MotionPacket(7, 70000 % 65536, 5, True, 9, b"xyz")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than the 12-byte minimum"),
        (pack_packet(PACKET)[:11], "shorter than"),
        (pack_packet(PACKET)[:-1], "CRC32 mismatch"),
        (b"\xc1" + bytes(MAX_PACKET_BYTES), "exceeds the 4096-byte limit"),
        (_with_crc(b"\xa1" + bytes(7)), "bad magic 0xa"),
        (_with_crc(b"\xc1" + bytes(7)), "unsupported packet version 1"),
        (bytes([pack_packet(PACKET)[0]]) + b"\x00" + pack_packet(PACKET)[2:], "CRC32 mismatch"),
        ("not bytes", "must be bytes"),
    ],
)
def test_bad_packets_raise_bitstream_error_saying_why(data, message):
    with pytest.raises(BitstreamError, match=message):
        unpack_packet(data)


def test_every_single_bit_flip_is_detected():
    data = bytearray(pack_packet(PACKET))
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            unpack_packet(bytes(flipped))


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
    assert unwrap(2, 65534, 65536) == 65538
    assert unwrap(65535, 65537, 65536) == 65535
    assert unwrap(10, 0, 65536) == 10
