"""The offline ``.ccv`` container: everything needed to replay one coded motion stream.

Layout (integers big-endian):

| field        | size | meaning                                                          |
|--------------|------|------------------------------------------------------------------|
| magic        | 4    | b"CCV1"                                                          |
| version      | 1    | container version (3)                                            |
| header len   | 4    | length of the JSON header, at most 64 KiB                        |
| header       | n    | UTF-8 JSON: schema, fps, prompt, preset (a models.config preset  |
|              |      | name or null), packets (count)                                   |
| keyframe len | 4    | length of the key frame, at most 16 MiB                          |
| keyframe     | m    | ``codec.keyframe`` bytes (the receiver's reference picture)      |
| pictures     | 1    | style pictures that follow, 0..MAX_SENT_STYLE_IMAGES (version 3) |
| picture      | 4+k  | each: u32 length (1..SENT_STYLE_IMAGE_BYTES), JPEG/PNG bytes     |
| CRC32        | 4    | CRC32 of everything above                                        |
| packets      | ...  | ``packets`` records: u16 length, motion packet, CRC32 of both    |

The file must end exactly after the last packet. Motion packets carry no CRC of their own (on
the live path DTLS and SCTP guard them), so the file keeps one per packet. Style pictures
(``models.style_images.encode_style_image``; their limits live there) let the decoder adapt a
style to their look. Version 2 is version 3 without the picture fields; it is still read.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codec.boundedjson import JsonRefused, load_bounded_json
from codec.errors import BitstreamError
from codec.packet import MAX_PACKET_BYTES
from codec.schema import FeatureSchema
from models.config import PRESETS
from models.style_images import MAX_SENT_STYLE_IMAGES, SENT_STYLE_IMAGE_BYTES
from models.style_names import MAX_PROMPT_CHARS

MAGIC = b"CCV1"
VERSION = 3
READABLE_VERSIONS = (2, 3)
MAX_HEADER_BYTES = 1 << 16
MAX_KEYFRAME_BYTES = 1 << 24
MAX_HEADER_DEPTH = 4  # header -> schema -> groups -> group
MAX_HEADER_INT_DIGITS = 10  # the packet count and the schema's sizes
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


@dataclass
class CcvFile:
    schema: FeatureSchema
    fps: float
    keyframe: bytes
    packets: list[bytes] = field(default_factory=list)
    prompt: str | None = None
    preset: str | None = None
    style_images: list[bytes] = field(default_factory=list)  # encoded style pictures


def to_bytes(ccv: CcvFile) -> bytes:
    header = {
        "schema": ccv.schema.to_dict(),
        "fps": ccv.fps,
        "prompt": ccv.prompt,
        "preset": ccv.preset,
        "packets": len(ccv.packets),
    }
    header_bytes = json.dumps(header, sort_keys=True).encode()
    if len(header_bytes) > MAX_HEADER_BYTES or len(ccv.keyframe) > MAX_KEYFRAME_BYTES:
        raise ValueError("container header or key frame exceeds its size limit")
    head = MAGIC + bytes([VERSION]) + _U32.pack(len(header_bytes)) + header_bytes
    head += _U32.pack(len(ccv.keyframe)) + ccv.keyframe
    if len(ccv.style_images) > MAX_SENT_STYLE_IMAGES:
        raise ValueError(
            f"{len(ccv.style_images)} style pictures; a .ccv file holds {MAX_SENT_STYLE_IMAGES}"
        )
    head += bytes([len(ccv.style_images)])
    for picture in ccv.style_images:
        if not 0 < len(picture) <= SENT_STYLE_IMAGE_BYTES:
            raise ValueError(f"style picture of {len(picture)} bytes cannot be stored")
        head += _U32.pack(len(picture)) + picture
    records = []
    for packet in ccv.packets:
        if not 0 < len(packet) <= MAX_PACKET_BYTES:
            raise ValueError(f"packet of {len(packet)} bytes cannot be stored")
        record = _U16.pack(len(packet)) + packet
        records.append(record + _U32.pack(zlib.crc32(record)))
    return head + _U32.pack(zlib.crc32(head)) + b"".join(records)


def from_bytes(data: bytes) -> CcvFile:
    """Parse and validate a container; anything malformed raises BitstreamError."""
    reader = _Reader(bytes(data))
    magic = reader.take(4, "magic")
    if magic != MAGIC:
        raise BitstreamError(f"not a .ccv file: magic {magic!r}, expected {MAGIC!r}")
    version = reader.take(1, "version")[0]
    if version not in READABLE_VERSIONS:
        raise BitstreamError(
            f"unsupported .ccv version {version} (this reader reads "
            f"{' and '.join(map(str, READABLE_VERSIONS))})"
        )
    header_bytes = reader.take(reader.length(_U32, MAX_HEADER_BYTES, "header"), "header")
    keyframe = reader.take(reader.length(_U32, MAX_KEYFRAME_BYTES, "key frame"), "key frame")
    style_images = _style_pictures(reader) if version >= 3 else []
    head_end = reader.offset
    if _U32.unpack(reader.take(4, "header CRC32"))[0] != zlib.crc32(data[:head_end]):
        raise BitstreamError(".ccv header CRC32 mismatch: the file is corrupted")
    header = _parse_header(header_bytes)
    packets = [_packet_record(reader, index) for index in range(header["packets"])]
    if reader.offset != len(data):
        raise BitstreamError(f".ccv file has {len(data) - reader.offset} unexpected trailing bytes")
    return CcvFile(
        schema=FeatureSchema.from_dict(header["schema"]),
        fps=header["fps"],
        keyframe=keyframe,
        packets=packets,
        prompt=header["prompt"],
        preset=header["preset"],
        style_images=style_images,
    )


def _style_pictures(reader: _Reader) -> list[bytes]:
    count = reader.take(1, "style picture count")[0]
    if count > MAX_SENT_STYLE_IMAGES:
        raise BitstreamError(
            f".ccv file claims {count} style pictures; at most {MAX_SENT_STYLE_IMAGES} are allowed"
        )
    pictures = []
    for index in range(count):
        what = f"style picture {index + 1}"
        size = reader.length(_U32, SENT_STYLE_IMAGE_BYTES, what)
        if size == 0:
            raise BitstreamError(f".ccv {what} is empty")
        pictures.append(reader.take(size, what))
    return pictures


def _packet_record(reader: _Reader, index: int) -> bytes:
    start = reader.offset
    packet = reader.take(reader.length(_U16, MAX_PACKET_BYTES, "packet"), "packet")
    crc = _U32.unpack(reader.take(4, "packet CRC32"))[0]
    if crc != zlib.crc32(reader.data[start : reader.offset - 4]):
        raise BitstreamError(f".ccv packet {index} CRC32 mismatch: the file is corrupted")
    return packet


def write_container(path: str | Path, ccv: CcvFile) -> None:
    Path(path).write_bytes(to_bytes(ccv))


def read_container(path: str | Path) -> CcvFile:
    return from_bytes(Path(path).read_bytes())


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        if self.offset + size > len(self.data):
            raise BitstreamError(f".ccv file truncated while reading the {what}")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def length(self, fmt: struct.Struct, limit: int, what: str) -> int:
        (value,) = fmt.unpack(self.take(fmt.size, f"{what} length"))
        if value > limit:
            raise BitstreamError(f".ccv {what} length {value} exceeds the {limit}-byte limit")
        return int(value)


def _parse_header(header_bytes: bytes) -> dict[str, Any]:
    try:
        header = load_bounded_json(header_bytes, MAX_HEADER_DEPTH, MAX_HEADER_INT_DIGITS)
    except JsonRefused as exc:
        raise BitstreamError(f".ccv header is {exc}") from exc
    if not isinstance(header, dict):
        raise BitstreamError(".ccv header must be a JSON object")
    expected = {"schema", "fps", "prompt", "preset", "packets"}
    if set(header) != expected:
        raise BitstreamError(f".ccv header fields {sorted(header)} differ from {sorted(expected)}")
    fps, count = header["fps"], header["packets"]
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 1000:
        raise BitstreamError(f".ccv fps {fps!r} is not a number in (0, 1000]")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BitstreamError(f".ccv packet count {count!r} is not a non-negative integer")
    prompt, preset = header["prompt"], header["preset"]
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        raise BitstreamError(f".ccv prompt must be a string of at most {MAX_PROMPT_CHARS} chars")
    # the preset names the weights file decode loads: only a known name, never a path
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        raise BitstreamError(
            f".ccv preset {str(preset)[:60]!r} is not one of the known presets {', '.join(PRESETS)}"
        )
    header["fps"] = float(fps)
    return header
