"""Reference (key) frame coding with a real image codec, and chunking for data channels.

``encode_keyframe`` wraps one intra-coded picture (HEVC via libx265 by default, or WebP via
libwebp, both through PyAV) in a small self-describing envelope:

| offset | size | field                                           |
|--------|------|-------------------------------------------------|
| 0      | 2    | magic b"CK"                                     |
| 2      | 1    | version (1)                                     |
| 3      | 1    | codec id: 1 = HEVC (libx265), 2 = WebP          |
| 4      | 2    | width  (u16, big-endian)                        |
| 6      | 2    | height (u16, big-endian)                        |
| 8      | n    | codec bitstream                                 |
| 8 + n  | 4    | CRC32 of bytes 0 .. 8+n-1                       |

``split_chunks`` cuts any byte string into chunks of at most 16 KiB, each with a 14-byte
header (magic b"KC", version, transfer id = CRC32 of the whole data, index, count, chunk CRC32);
``KeyframeAssembler`` collects chunks in any order and returns the data once complete and
verified.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from typing import TYPE_CHECKING, cast

import numpy as np

from codec.errors import BitstreamError

if TYPE_CHECKING:
    from av.video.codeccontext import VideoCodecContext


KEYFRAME_MAGIC = b"CK"
KEYFRAME_VERSION = 1
KEYFRAME_HEADER = struct.Struct(">2sBBHH")
CODEC_IDS = {"hevc": 1, "webp": 2}
_ENCODERS = {"hevc": "libx265", "webp": "libwebp"}
_DECODERS = {1: "hevc", 2: "webp"}
MAX_SIDE = 4096
CODING_BLOCK = 64  # largest block a key frame codec codes the picture in (HEVC CTU)
DEFAULT_QUALITY = 50

CHUNK_MAGIC = b"KC"
CHUNK_VERSION = 1
CHUNK_HEADER = struct.Struct(">2sBIHHI")  # magic, version, transfer id, index, count, chunk crc
MAX_CHUNK = 16384
MAX_CHUNKS = 1024  # 16 MiB at most per key frame


def encode_keyframe(
    image: np.ndarray, quality: int = DEFAULT_QUALITY, codec: str = "hevc"
) -> bytes:
    """image: HxWx3 uint8 RGB -> key frame bytes. quality 0..100 (higher = larger, better)."""
    image = _validated_image(image)
    if not 0 <= quality <= 100:
        raise ValueError(f"quality must be in 0..100, got {quality}")
    if codec not in CODEC_IDS:
        raise ValueError(f"unknown key frame codec {codec!r}; choose one of {sorted(CODEC_IDS)}")
    height, width = image.shape[:2]
    bitstream = _encode_picture(_pad_even(image), quality, codec)
    body = KEYFRAME_HEADER.pack(KEYFRAME_MAGIC, KEYFRAME_VERSION, CODEC_IDS[codec], width, height)
    body += bitstream
    return body + struct.pack(">I", zlib.crc32(body))


def decode_keyframe(data: bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """Key frame bytes -> HxWx3 uint8 RGB; bad input raises BitstreamError.

    The picture may not be larger than its header says (sides up to ``max_side``): the decoder
    is told so before it allocates anything, so a few bytes cannot claim a huge picture."""
    data = bytes(data)
    if len(data) < KEYFRAME_HEADER.size + 4:
        raise BitstreamError(f"key frame of {len(data)} bytes is too short")
    magic, version, codec_id, width, height = KEYFRAME_HEADER.unpack_from(data)
    if magic != KEYFRAME_MAGIC:
        raise BitstreamError(f"bad key frame magic {magic!r} (expected {KEYFRAME_MAGIC!r})")
    if version != KEYFRAME_VERSION:
        raise BitstreamError(f"unsupported key frame version {version}")
    if codec_id not in _DECODERS:
        raise BitstreamError(f"unknown key frame codec id {codec_id}")
    if not (0 < width <= max_side and 0 < height <= max_side):
        raise BitstreamError(f"key frame size {width}x{height} outside 1..{max_side}")
    if zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
        raise BitstreamError("key frame CRC32 mismatch: corrupted or truncated")
    coded = (height + height % 2, width + width % 2)  # as _pad_even sent it
    # decoders allocate whole coding blocks (HEVC up to 64x64): allow that much margin
    limit = (coded[0] + CODING_BLOCK) * (coded[1] + CODING_BLOCK)
    picture = _decode_picture(data[KEYFRAME_HEADER.size : -4], _DECODERS[codec_id], limit)
    if picture.shape[:2] != coded:
        raise BitstreamError(
            f"key frame decodes to {picture.shape[1]}x{picture.shape[0]}, "
            f"header says {width}x{height}"
        )
    return np.ascontiguousarray(picture[:height, :width])


def _validated_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
    if not (0 < image.shape[0] <= MAX_SIDE and 0 < image.shape[1] <= MAX_SIDE):
        raise ValueError(f"image sides must be in 1..{MAX_SIDE}, got {image.shape[:2]}")
    return image


def _pad_even(image: np.ndarray) -> np.ndarray:
    """4:2:0 coding needs even sides; replicate the last row/column (cropped after decoding)."""
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _encode_picture(image: np.ndarray, quality: int, codec: str) -> bytes:
    import av

    context = cast("VideoCodecContext", av.CodecContext.create(_ENCODERS[codec], "w"))
    context.width, context.height = image.shape[1], image.shape[0]
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, 25)
    if codec == "hevc":
        crf = round(51 * (100 - quality) / 100)
        context.options = {"crf": str(crf), "x265-params": "log-level=none:keyint=1:info=0"}
    else:
        context.options = {"quality": str(quality)}
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    packets = list(context.encode(frame)) + list(context.encode(None))
    return b"".join(bytes(packet) for packet in packets)


def _decode_picture(bitstream: bytes, decoder: str, max_pixels: int) -> np.ndarray:
    import av

    try:
        context = cast("VideoCodecContext", av.CodecContext.create(decoder, "r"))
        context.options = {"max_pixels": str(max_pixels)}  # refused before any allocation
        frames = list(context.decode(av.Packet(bitstream))) + list(context.decode(None))
    except av.FFmpegError as exc:
        raise BitstreamError(f"key frame picture does not decode: {exc}") from exc
    if not frames:
        raise BitstreamError("key frame picture decodes to no image")
    return frames[0].to_ndarray(format="rgb24")


def split_chunks(data: bytes, max_chunk: int = MAX_CHUNK) -> list[bytes]:
    """Cut ``data`` into chunks of at most ``max_chunk`` bytes (headers included)."""
    if not CHUNK_HEADER.size < max_chunk <= MAX_CHUNK:
        raise ValueError(f"max_chunk must be in {CHUNK_HEADER.size + 1}..{MAX_CHUNK}")
    room = max_chunk - CHUNK_HEADER.size
    pieces = [data[i : i + room] for i in range(0, len(data), room)] or [b""]
    if len(pieces) > MAX_CHUNKS:
        raise ValueError(f"{len(data)} bytes need {len(pieces)} chunks, more than {MAX_CHUNKS}")
    transfer_id = zlib.crc32(data)
    return [
        CHUNK_HEADER.pack(
            CHUNK_MAGIC, CHUNK_VERSION, transfer_id, index, len(pieces), zlib.crc32(piece)
        )
        + piece
        for index, piece in enumerate(pieces)
    ]


class KeyframeAssembler:
    """Reassembles chunked data; keeps at most ``max_pending`` incomplete transfers."""

    def __init__(self, max_bytes: int = MAX_CHUNK * MAX_CHUNKS, max_pending: int = 2) -> None:
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self._pending: dict[int, dict[int, bytes]] = {}
        self._counts: dict[int, int] = {}

    def add(self, chunk: bytes) -> bytes | None:
        """Add one chunk; returns the whole data when this chunk completes a verified transfer."""
        transfer_id, index, count, piece = _parse_chunk(chunk)
        if count > MAX_CHUNKS:
            raise BitstreamError(f"chunk claims {count} chunks, more than the {MAX_CHUNKS} allowed")
        if self._counts.get(transfer_id, count) != count:
            raise BitstreamError(
                f"chunk count {count} disagrees with earlier chunks of the transfer"
            )
        pieces = self._transfer(transfer_id, count)
        pieces[index] = piece
        if sum(len(p) for p in pieces.values()) > self.max_bytes:
            self._forget(transfer_id)
            raise BitstreamError(f"key frame exceeds the {self.max_bytes}-byte limit; refused")
        if len(pieces) < count:
            return None
        self._forget(transfer_id)
        data = b"".join(pieces[i] for i in range(count))
        if zlib.crc32(data) != transfer_id:
            raise BitstreamError("reassembled key frame fails its CRC32 check")
        return data

    def _transfer(self, transfer_id: int, count: int) -> dict[int, bytes]:
        if transfer_id not in self._pending:
            while len(self._pending) >= self.max_pending:
                self._forget(next(iter(self._pending)))
            self._pending[transfer_id] = {}
            self._counts[transfer_id] = count
        return self._pending[transfer_id]

    def _forget(self, transfer_id: int) -> None:
        self._pending.pop(transfer_id, None)
        self._counts.pop(transfer_id, None)


def _parse_chunk(chunk: bytes) -> tuple[int, int, int, bytes]:
    chunk = bytes(chunk)
    if len(chunk) < CHUNK_HEADER.size:
        raise BitstreamError(f"key frame chunk of {len(chunk)} bytes is shorter than its header")
    if len(chunk) > MAX_CHUNK:
        raise BitstreamError(f"key frame chunk of {len(chunk)} bytes exceeds {MAX_CHUNK}")
    magic, version, transfer_id, index, count, crc = CHUNK_HEADER.unpack_from(chunk)
    if magic != CHUNK_MAGIC:
        raise BitstreamError(f"bad key frame chunk magic {magic!r} (expected {CHUNK_MAGIC!r})")
    if version != CHUNK_VERSION:
        raise BitstreamError(f"unsupported key frame chunk version {version}")
    if not index < count:
        raise BitstreamError(f"chunk index {index} not below chunk count {count}")
    piece = chunk[CHUNK_HEADER.size :]
    if zlib.crc32(piece) != crc:
        raise BitstreamError(f"key frame chunk {index} fails its CRC32 check")
    return transfer_id, index, count, piece
