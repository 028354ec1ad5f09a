import struct
import zlib

import numpy as np
import pytest

from codec import BitstreamError
from codec.keyframe import (
    CHUNK_HEADER,
    KeyframeAssembler,
    decode_keyframe,
    encode_keyframe,
    split_chunks,
)


def _portrait(height: int = 64, width: int = 48) -> np.ndarray:
    """A smooth synthetic picture (gradients and a disc) that an image codec codes well."""
    y, x = np.mgrid[0:height, 0:width]
    disc = ((y - height / 2) ** 2 + (x - width / 2) ** 2 < (width / 3) ** 2) * 120
    image = np.stack([x * 4 % 256, y * 3 % 256, disc + 60], axis=-1)
    return image.astype(np.uint8)


@pytest.mark.parametrize("codec", ["hevc", "webp"])
def test_keyframe_round_trip_is_close(codec):
    image = _portrait(65, 47)  # odd sides are padded for 4:2:0 and cropped back
    decoded = decode_keyframe(encode_keyframe(image, quality=80, codec=codec))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 6


def test_higher_quality_costs_more_bytes():
    image = _portrait(128, 128)
    assert len(encode_keyframe(image, quality=90)) > len(encode_keyframe(image, quality=20))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:10], "too short|CRC32"),
        (lambda d: b"XX" + d[2:], "bad key frame magic"),
        (lambda d: d[:2] + b"\x09" + d[3:], "unsupported key frame version 9"),
        (lambda d: d[:3] + b"\x07" + d[4:], "unknown key frame codec id 7"),
        (lambda d: d[:4] + b"\x00\x00" + d[6:], "outside 1..4096"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "CRC32 mismatch"),
    ],
)
def test_bad_keyframes_are_refused(mutate, message):
    data = encode_keyframe(_portrait())
    with pytest.raises(BitstreamError, match=message):
        decode_keyframe(mutate(data))


def _with_header_size(data: bytes, width: int, height: int) -> bytes:
    """The key frame with another size in its header and a CRC that matches again."""
    body = data[:4] + struct.pack(">HH", width, height) + data[8:-4]
    return body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize("codec", ["hevc", "webp"])
def test_picture_larger_than_its_header_is_refused_before_decoding(codec):
    """Used to be decoded whole and cropped: 8 KB could make the server allocate 8192x4320."""
    data = _with_header_size(encode_keyframe(_portrait(256, 256), codec=codec), 16, 16)
    with pytest.raises(BitstreamError, match="key frame picture does not decode"):
        decode_keyframe(data)  # over (16 + 64)**2 pixels: the decoder refuses to allocate
    data = _with_header_size(encode_keyframe(_portrait(64, 48), codec=codec), 16, 16)
    with pytest.raises(BitstreamError, match="decodes to 48x64, header says 16x16"):
        decode_keyframe(data)
    smaller = _with_header_size(encode_keyframe(_portrait(64, 48), codec=codec), 48, 80)
    with pytest.raises(BitstreamError, match="decodes to 48x64, header says 48x80"):
        decode_keyframe(smaller)


def test_header_size_is_checked_against_the_caller_s_bound():
    data = encode_keyframe(_portrait(64, 48))
    assert decode_keyframe(data, max_side=64).shape == (64, 48, 3)
    with pytest.raises(BitstreamError, match="key frame size 48x64 outside 1..32"):
        decode_keyframe(data, max_side=32)


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_keyframe(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="unknown key frame codec"):
        encode_keyframe(_portrait(), codec="gif")


def test_chunks_are_bounded_and_reassemble_in_any_order():
    data = np.random.default_rng(0).bytes(40_000)
    chunks = split_chunks(data)
    assert len(chunks) == 3 and max(len(c) for c in chunks) <= 16384
    assembler = KeyframeAssembler()
    assert assembler.add(chunks[2]) is None
    assert assembler.add(chunks[0]) is None
    assert assembler.add(chunks[1]) == data
    assert split_chunks(b"", max_chunk=100)[0][CHUNK_HEADER.size :] == b""


def test_corrupted_chunk_is_refused_and_the_transfer_can_be_resent():
    data = encode_keyframe(_portrait(96, 96))
    chunks = split_chunks(data, max_chunk=500)
    assembler = KeyframeAssembler()
    corrupted = bytearray(chunks[1])
    corrupted[-1] ^= 0x10
    assembler.add(chunks[0])
    with pytest.raises(BitstreamError, match="chunk 1 fails its CRC32 check"):
        assembler.add(bytes(corrupted))
    result = [assembler.add(c) for c in chunks[1:]][-1]
    assert result == data


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        (b"KC", "shorter than its header"),
        (b"ZZ" + split_chunks(b"abc")[0][2:], "bad key frame chunk magic"),
        (split_chunks(b"abc")[0][:2] + b"\x05" + split_chunks(b"abc")[0][3:], "version 5"),
        (bytes(20000), "exceeds 16384"),
    ],
)
def test_bad_chunks_are_refused(chunk, message):
    with pytest.raises(BitstreamError, match=message):
        KeyframeAssembler().add(chunk)


def test_oversized_keyframe_is_refused():
    chunks = split_chunks(bytes(3000), max_chunk=1000)
    assembler = KeyframeAssembler(max_bytes=2000)
    with pytest.raises(BitstreamError, match="exceeds the 2000-byte limit"):
        for chunk in chunks:
            assembler.add(chunk)
