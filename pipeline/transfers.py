"""Binary transfers on ``control``: chunks in, whole key frames and style pictures out.

A sender sends its key frame, and the pictures of a ``style_image`` announcement, as chunked
transfers (``codec.keyframe.split_chunks``) on the reliable ``control`` channel; the transfer id
is the CRC32 of the whole data. ``ControlTransfers`` reassembles them (bounded:
``MAX_KEYFRAME_BYTES`` a transfer, two pending) and says what each completed transfer is: a
picture of the pending announcement when the announcement named its CRC32, else a key frame.
The server reads its participants' transfers with it, and a client that renders locally reads
the ones the server relays.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from codec.keyframe import KeyframeAssembler
from pipeline.protocol import MAX_KEYFRAME_BYTES


@dataclass
class StylePictures:
    """A ``style_image`` announcement and the pictures of it that have arrived so far."""

    prompt_id: int
    transfers: list[int]
    received: dict[int, bytes] = field(default_factory=dict)

    def complete(self) -> bool:
        return len(self.received) == len(self.transfers)

    def pictures(self) -> list[bytes]:
        return [self.received[transfer] for transfer in self.transfers]


@dataclass(frozen=True)
class Keyframe:
    data: bytes


class ControlTransfers:
    def __init__(self, max_bytes: int = MAX_KEYFRAME_BYTES) -> None:
        self._assembler = KeyframeAssembler(max_bytes=max_bytes)
        self._announced: StylePictures | None = None  # announced, not all arrived yet

    def announce(self, prompt_id: int, transfers: list[int]) -> None:
        """Pictures announced: their chunks follow. A newer announcement replaces an older
        one whose pictures have not all arrived."""
        self._announced = StylePictures(prompt_id, transfers)

    def add(self, chunk: bytes) -> Keyframe | StylePictures | None:
        """One chunk -> the key frame, or the announced pictures once all have arrived, that
        it completes; None while a transfer is incomplete. BitstreamError for a chunk or
        transfer that is malformed or too large."""
        data = self._assembler.add(chunk)
        if data is None:
            return None
        pictures = self._announced
        if pictures is not None and zlib.crc32(data) in pictures.transfers:
            pictures.received[zlib.crc32(data)] = data
            if not pictures.complete():
                return None
            self._announced = None
            return pictures
        return Keyframe(data)
