"""Motion packet framing: a 6-byte header and the entropy-coded payload, nothing else.

Integrity is the channel's: on the live path DTLS authenticates and SCTP checks every message,
and the ``.ccv`` container keeps a CRC32 per stored packet. All integers big-endian.

| offset | size | field         | meaning                                                  |
|--------|------|---------------|----------------------------------------------------------|
| 0      | 1    | magic/version | high nibble 0xC (magic), low nibble format version (3)   |
| 1      | 1    | stream id     | sender's stream, 0..255                                  |
| 2      | 1    | seq           | frame sequence number mod 2**8 (receiver unwraps)        |
| 3      | 2    | capture time  | sender capture time in ms mod 2**16 (receiver unwraps)   |
| 5      | 1    | flags         | bit 7: intra; bits 0-6: active prompt id mod 2**7        |
| 6      | n    | payload       | intra: level i8, count u16, range code;                  |
|        |      |               | inter: reference distance u8 (1..32), range code         |

The receiver unwraps seq and time against the last decoded frame: seq reaches 127 frames
(5 s at 25 fps) either way, time 32.7 s, both far beyond what a data channel holds a packet
back or the 32-frame reference window.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from codec.errors import BitstreamError

MAGIC = 0xC
VERSION = 3
HEADER = struct.Struct(">BBBHB")
OVERHEAD = HEADER.size
MAX_PACKET_BYTES = 4096
SEQ_MODULUS = 1 << 8
TIME_MODULUS = 1 << 16
PROMPT_MODULUS = 1 << 7


@dataclass(frozen=True)
class MotionPacket:
    stream_id: int
    seq: int  # mod 2**8 on the wire
    capture_time_ms: int  # mod 2**16 on the wire
    intra: bool
    prompt_id: int  # mod 2**7 on the wire
    payload: bytes


def pack_packet(packet: MotionPacket) -> bytes:
    """Serialize; seq, capture time and prompt id are reduced modulo their field width."""
    if not 0 <= packet.stream_id <= 255:
        raise ValueError(f"stream id {packet.stream_id} not in 0..255")
    if packet.prompt_id < 0:
        raise ValueError(f"prompt id {packet.prompt_id} is negative")
    if len(packet.payload) > MAX_PACKET_BYTES - OVERHEAD:
        raise ValueError(f"payload of {len(packet.payload)} bytes exceeds the packet limit")
    flags = (0x80 if packet.intra else 0) | packet.prompt_id % PROMPT_MODULUS
    header = HEADER.pack(
        MAGIC << 4 | VERSION,
        packet.stream_id,
        packet.seq % SEQ_MODULUS,
        packet.capture_time_ms % TIME_MODULUS,
        flags,
    )
    return header + packet.payload


def unpack_packet(data: bytes) -> MotionPacket:
    """Parse one packet; anything wrong raises BitstreamError saying what."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"packet must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < OVERHEAD:
        raise BitstreamError(
            f"packet of {len(data)} bytes is shorter than the {OVERHEAD}-byte minimum"
        )
    if len(data) > MAX_PACKET_BYTES:
        raise BitstreamError(
            f"packet of {len(data)} bytes exceeds the {MAX_PACKET_BYTES}-byte limit"
        )
    magic_version, stream_id, seq, time16, flags = HEADER.unpack_from(data)
    if magic_version >> 4 != MAGIC:
        raise BitstreamError(
            f"bad magic 0x{magic_version >> 4:x} (expected 0x{MAGIC:x}): not a motion packet"
        )
    if magic_version & 0xF != VERSION:
        raise BitstreamError(
            f"unsupported packet version {magic_version & 0xF} (this decoder reads {VERSION})"
        )
    return MotionPacket(
        stream_id=stream_id,
        seq=seq,
        capture_time_ms=time16,
        intra=bool(flags & 0x80),
        prompt_id=flags & 0x7F,
        payload=data[HEADER.size :],
    )


def unwrap(value: int, reference: int, modulus: int) -> int:
    """The integer congruent to ``value`` mod ``modulus`` nearest to ``reference``."""
    delta = (value - reference) % modulus
    if delta >= modulus // 2:
        delta -= modulus
    return reference + delta
