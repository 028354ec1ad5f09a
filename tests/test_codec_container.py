import json
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec import BitstreamError, MotionEncoder, motion_schema
from codec.container import CcvFile, from_bytes, read_container, to_bytes, write_container
from tests.codec_samples import encode_all, synthetic_motion

CCV = CcvFile(
    schema=motion_schema(),
    fps=25.0,
    keyframe=b"CK-not-a-real-picture",
    packets=encode_all(MotionEncoder(), synthetic_motion(12)),
    prompt="sketch",
    preset="lite-128",
    style_images=[b"\xff\xd8picture one", b"\x89PNGpicture two"],
)
DATA = to_bytes(CCV)


def test_container_round_trip(tmp_path):
    path = tmp_path / "clip.ccv"
    write_container(path, CCV)
    assert read_container(path) == CCV
    assert from_bytes(DATA) == CCV


def test_each_packet_is_stored_with_its_length_and_a_crc32_golden():
    ccv = CcvFile(schema=motion_schema(), fps=25.0, keyframe=b"", packets=[b"\xc3\x00\x01"])
    data = to_bytes(ccv)
    # u16 length 3, the packet, zlib CRC32 of those 5 bytes
    assert data[-9:].hex() == "0003" + "c30001" + "3079407c"
    assert data[:5] == b"CCV1\x03"


def test_style_pictures_follow_the_key_frame_golden() -> None:
    ccv = CcvFile(
        schema=motion_schema(), fps=25.0, keyframe=b"K", packets=[], style_images=[b"ab", b"c"]
    )
    data = to_bytes(ccv)
    # key frame length 1, "K", 2 pictures: u32 length + bytes each, then the CRC32 of the head
    tail = "00000001" + b"K".hex() + "02" + "00000002" + b"ab".hex() + "00000001" + b"c".hex()
    assert data[:-4].hex().endswith(tail)
    assert data[-4:] == struct.pack(">I", zlib.crc32(data[:-4]))
    assert from_bytes(data).style_images == [b"ab", b"c"]


def test_a_version_2_file_still_reads_without_style_pictures() -> None:
    """Version 2 is version 3 without the picture count and pictures."""
    v3 = to_bytes(CcvFile(**{**vars(CCV), "style_images": []}))
    keyframe_end = v3.index(CCV.keyframe) + len(CCV.keyframe)
    assert v3[keyframe_end] == 0
    head = b"CCV1\x02" + v3[5:keyframe_end]
    v2 = head + struct.pack(">I", zlib.crc32(head)) + v3[keyframe_end + 5 :]
    assert from_bytes(v2) == CcvFile(**{**vars(CCV), "style_images": []})


@pytest.mark.parametrize(
    ("pictures", "message"),
    [([b"x"] * 5, "5 style pictures; a .ccv file holds 4"), ([b""], "picture of 0 bytes")],
)
def test_style_pictures_beyond_the_limits_are_not_written(
    pictures: list[bytes], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        to_bytes(CcvFile(**{**vars(CCV), "style_images": pictures}))


def _with_pictures(pictures: bytes) -> bytes:
    """A version 3 head (no packets) whose picture fields are ``pictures``, CRC recomputed."""
    text = json.dumps(GOOD_HEADER).encode()
    head = b"CCV1\x03" + struct.pack(">I", len(text)) + text + struct.pack(">I", 0) + pictures
    return head + struct.pack(">I", zlib.crc32(head))


def _with_header(header: dict) -> bytes:
    """A container whose JSON header is replaced (CRC recomputed), to reach header checks."""
    import zlib

    text = json.dumps(header).encode()
    head = b"CCV1\x02" + struct.pack(">I", len(text)) + text + struct.pack(">I", 0)
    return head + struct.pack(">I", zlib.crc32(head))


GOOD_HEADER = {
    "schema": motion_schema().to_dict(),
    "fps": 25.0,
    "prompt": None,
    "preset": None,
    "packets": 0,
}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated while reading the magic"),
        (b"RIFF" + DATA[4:], "not a .ccv file"),
        (DATA[:4] + b"\x01" + DATA[5:], "unsupported .ccv version 1 .*reads 2 and 3"),
        (_with_pictures(b"\x05"), "claims 5 style pictures; at most 4 are allowed"),
        (_with_pictures(b"\x01" + struct.pack(">I", 0)), "style picture 1 is empty"),
        (_with_pictures(b"\x01" + struct.pack(">I", 2**17 + 1)), "picture 1 length 131073 exc"),
        (_with_pictures(b"\x02\x00\x00\x00\x01x")[:-4], "reading the style picture 2 length"),
        (DATA[:5] + b"\xff\xff\xff\xff" + DATA[9:], "header length 4294967295 exceeds"),
        (DATA[:-1], "truncated while reading the packet CRC32"),
        (DATA[:-5], "truncated while reading the packet"),
        (DATA[:-6] + bytes([DATA[-6] ^ 1]) + DATA[-5:], ".ccv packet 11 CRC32 mismatch"),
        (DATA + b"\x00", "1 unexpected trailing bytes"),
        (DATA[:20] + bytes([DATA[20] ^ 4]) + DATA[21:], "CRC32 mismatch"),
        (_with_header({**GOOD_HEADER, "fps": -1}), "fps -1"),
        (_with_header({**GOOD_HEADER, "packets": "many"}), "packet count"),
        (_with_header({**GOOD_HEADER, "extra": 1}), "header fields"),
        (_with_header({**GOOD_HEADER, "schema": {"groups": 3}}), "invalid feature schema"),
        (_with_header({**GOOD_HEADER, "packets": 10**9}), "truncated"),
        (_with_header({**GOOD_HEADER, "preset": "../../x"}), "preset '../../x' is not one of"),
        (_with_header({**GOOD_HEADER, "preset": "/etc/x"}), "preset '/etc/x' is not one of"),
        (_with_header({**GOOD_HEADER, "preset": ["tiny"]}), "preset \"\\['tiny'\\]\" is not"),
        (_with_header({**GOOD_HEADER, "prompt": 3}), "prompt must be a string"),
        (_with_header({**GOOD_HEADER, "fps": [[[[[[1]]]]]]}), "nested deeper than 4 levels"),
        (_with_header({**GOOD_HEADER, "packets": 10**30}), "integer of 31 digits"),
    ],
)
def test_corrupt_containers_are_refused_with_a_reason(data, message):
    with pytest.raises(BitstreamError, match=message):
        from_bytes(data)


def test_header_with_a_valid_crc_but_no_json_is_refused():
    import zlib

    head = b"CCV1\x02" + struct.pack(">I", 3) + b"{{{" + struct.pack(">I", 0)
    with pytest.raises(BitstreamError, match="header is not JSON: Expecting property name"):
        from_bytes(head + struct.pack(">I", zlib.crc32(head)))


@settings(max_examples=1000, deadline=None)
@given(position=st.integers(0, len(DATA) - 1), value=st.integers(0, 255), cut=st.booleans())
def test_fuzz_mutated_containers_parse_or_raise_bitstream_error(position, value, cut):
    data = DATA[:position] if cut else DATA[:position] + bytes([value]) + DATA[position + 1 :]
    try:
        parsed = from_bytes(data)
    except BitstreamError as exc:
        assert str(exc)
    else:
        assert parsed.schema == CCV.schema


def _with_raw_header(text: bytes) -> bytes:
    import zlib

    head = b"CCV1\x02" + struct.pack(">I", len(text)) + text + struct.pack(">I", 0)
    return head + struct.pack(">I", zlib.crc32(head))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[" * 60000, "nested deeper than 4 levels"),  # RecursionError before
        (b'{"packets": ' + b"9" * 5000 + b"}", "integer of 5000 digits"),  # bare ValueError
        (b'{"fps": NaN}', "NaN is not a number"),
        (b'{"fps": 1e400}', "header is not JSON: 1e400 is out of range"),
        (b'"\xff"', "not UTF-8"),
    ],
)
def test_hostile_headers_are_bitstream_errors(text: bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        from_bytes(_with_raw_header(text))


def test_every_known_preset_is_accepted() -> None:
    from models.config import PRESETS

    for preset in PRESETS:
        assert from_bytes(to_bytes(CcvFile(**{**vars(CCV), "preset": preset}))).preset == preset
