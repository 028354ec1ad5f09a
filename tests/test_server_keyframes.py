"""Server-wide key frame decoding: bounded, refused beyond the bound, never queued without end."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from codec import BitstreamError
from codec.keyframe import encode_keyframe
from server import keyframes
from server.keyframes import KeyframeDecodes, KeyframesBusy

FACE = encode_keyframe(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))


async def test_decodes_a_key_frame() -> None:
    decodes = KeyframeDecodes(threads=1, queue=0, max_side=64)
    image = await decodes.decode(FACE)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and decodes.decoded == 1
    with pytest.raises(BitstreamError, match="bad key frame magic"):
        await decodes.decode(b"XXXX" + FACE[4:])
    decodes.close()


async def test_beyond_threads_plus_queue_decodes_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow_decode(data: bytes, max_side: int) -> np.ndarray:
        started.release()
        release.wait(10)
        return np.zeros((2, 2, 3), np.uint8)

    monkeypatch.setattr(keyframes, "decode_keyframe", slow_decode)
    decodes = KeyframeDecodes(threads=2, queue=1, max_side=64)
    admitted = [asyncio.create_task(decodes.decode(FACE)) for _ in range(3)]
    await asyncio.sleep(0)
    for _ in range(2):  # two run, the third waits for a thread
        assert await asyncio.to_thread(started.acquire, True, 10)
    with pytest.raises(KeyframesBusy, match="decoding 3 key frames already"):
        await decodes.decode(FACE)
    assert decodes.refused == 1
    admitted[0].cancel()  # whoever waits going away does not free the slot of a running decode
    with pytest.raises(KeyframesBusy):
        await decodes.decode(FACE)
    release.set()
    await asyncio.gather(*admitted[1:])
    await asyncio.sleep(0.05)  # the cancelled one's thread finishes and frees its slot
    assert (await decodes.decode(FACE)).shape == (2, 2, 3)
    assert (decodes.decoded, decodes.refused) == (3, 2)
    decodes.close()


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="need a decode thread and a queue >= 0, got 0 and 1"):
        KeyframeDecodes(threads=0, queue=1, max_side=64)


async def test_style_pictures_decode_in_one_slot_and_bad_ones_are_named() -> None:
    from models.style_images import encode_style_image

    decodes = KeyframeDecodes(threads=1, queue=0, max_side=64)
    red = encode_style_image(np.full((40, 30, 3), (220, 10, 10), np.uint8))
    images = await decodes.decode_style_images([red, red])
    assert [image.shape for image in images] == [(40, 30, 3)] * 2 and decodes.decoded == 1
    with pytest.raises(ValueError, match="^style picture 2: not a readable picture"):
        await decodes.decode_style_images([red, b"<html>not a picture</html>"])
    decodes.close()
