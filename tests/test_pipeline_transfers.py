"""Chunks on control become key frames, or the pictures an announcement named."""

from __future__ import annotations

import zlib

import pytest

from codec import BitstreamError
from codec.keyframe import split_chunks
from pipeline.transfers import ControlTransfers, Keyframe, StylePictures


def feed(transfers: ControlTransfers, data: bytes) -> list[Keyframe | StylePictures]:
    return [t for c in split_chunks(data) if (t := transfers.add(c)) is not None]


def test_unannounced_transfers_are_key_frames_and_announced_ones_pictures() -> None:
    transfers = ControlTransfers()
    keyframe, first, second = b"K" * 3000, b"P" * 2000, b"Q" * 10
    assert feed(transfers, keyframe) == [Keyframe(keyframe)]
    transfers.announce(4, [zlib.crc32(first), zlib.crc32(second)])
    assert feed(transfers, second) == []  # one of two pictures: wait for the other
    (pictures,) = feed(transfers, first)
    assert isinstance(pictures, StylePictures) and pictures.prompt_id == 4
    assert pictures.pictures() == [first, second]  # in the announced order
    assert feed(transfers, first) == [Keyframe(first)]  # the announcement is used up


def test_a_newer_announcement_replaces_an_unfinished_one() -> None:
    transfers = ControlTransfers()
    old, new = b"o" * 100, b"n" * 100
    transfers.announce(1, [zlib.crc32(old), zlib.crc32(b"never sent")])
    assert feed(transfers, old) == []
    transfers.announce(2, [zlib.crc32(new)])
    (pictures,) = feed(transfers, new)
    assert isinstance(pictures, StylePictures) and pictures.prompt_id == 2


def test_a_transfer_over_the_limit_is_refused() -> None:
    transfers = ControlTransfers(max_bytes=1000)
    with pytest.raises(BitstreamError, match="exceeds the 1000-byte limit"):
        feed(transfers, bytes(5000))
