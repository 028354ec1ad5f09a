import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from models import style_images
from models.face_crop import FaceCropper
from models.style_images import (
    decode_sent_style_image,
    decode_style_image,
    exemplar_tensor,
    picture_style_name,
    read_style_image,
    style_image_paths,
)
from tests.face_clip import portrait


def _png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is a 1x1 image's)."""
    ok, encoded = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def test_a_picture_reads_as_rgb_uint8(tmp_path: Path) -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 0] = 200  # red in RGB
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    read = read_style_image(path)
    assert read.shape == (40, 60, 3) and read.dtype == np.uint8
    assert read[..., 0].min() == 200 and read[..., 1:].max() == 0


def test_grey_and_transparent_pictures_become_rgb(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((20, 20), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha.png"), np.full((20, 20, 4), 90, np.uint8))
    for name in ("grey.png", "alpha.png"):
        assert read_style_image(tmp_path / name).shape == (20, 20, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, I am text", "not a readable picture"),
        (b"", "not a readable picture"),
        (_png(6000, 5000), "6000x5000 pixels; style pictures are limited to 25 megapixels"),
        (_png(20000, 20000), "not a readable picture .*decompression bomb"),
        (cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(), "8x8 is too small"),
    ],
)
def test_bad_pictures_are_refused_with_one_line(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        decode_style_image(data, "upload.png")
    assert str(error.value).startswith("upload.png: ") and "\n" not in str(error.value)


def test_a_truncated_picture_is_refused(tmp_path: Path) -> None:
    ok, encoded = cv2.imencode(".jpg", portrait())
    assert ok
    path = tmp_path / "cut.jpg"
    path.write_bytes(encoded.tobytes()[:2000])
    with pytest.raises(ValueError, match=r"cut.jpg: corrupt picture \(.*\)"):
        read_style_image(path)


def test_files_over_the_byte_limit_are_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(style_images, "MAX_STYLE_IMAGE_BYTES", 100)
    path = tmp_path / "big.png"
    path.write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="big.png: 0.0 MiB; style pictures are limited"):
        read_style_image(path)
    with pytest.raises(ValueError, match="nope: cannot read"):
        read_style_image(tmp_path / "big.png" / "nope")


def test_folders_expand_to_their_pictures(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in style_image_paths([tmp_path])] == ["a.jpg", "b.PNG"]
    with pytest.raises(ValueError, match="nope: no such file or folder"):
        style_image_paths([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no pictures"):
        style_image_paths([tmp_path / "empty"])


def test_too_many_pictures_are_refused(tmp_path: Path) -> None:
    for index in range(style_images.MAX_STYLE_IMAGES + 1):
        (tmp_path / f"{index}.png").write_bytes(b"")
    with pytest.raises(ValueError, match="at most 16"):
        style_image_paths([tmp_path])


def test_exemplars_are_face_crops_and_a_faceless_picture_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cropper = FaceCropper()
    faceless = np.full((50, 80, 3), 128, np.uint8)
    with caplog.at_level(logging.INFO, logger="models.style_images"):
        tensor = exemplar_tensor([portrait(), faceless], 32, cropper, names=["hopper", "grey"])
    assert tensor.shape == (2, 3, 32, 32) and 0 <= float(tensor.min()) <= float(tensor.max()) <= 1
    assert "grey: no face found" in caplog.text and "hopper" not in caplog.text
    with pytest.raises(ValueError, match="no style pictures"):
        exemplar_tensor([], 32)


def test_a_sent_picture_is_scaled_to_the_sent_side_and_round_trips() -> None:
    image = np.zeros((1200, 600, 3), np.uint8)
    image[:, :300] = (250, 40, 10)
    data = style_images.encode_style_image(image)
    assert len(data) <= style_images.SENT_STYLE_IMAGE_BYTES
    decoded = decode_sent_style_image(data)
    assert decoded.shape == (512, 256, 3)
    assert np.abs(decoded[:, :120].astype(int) - (250, 40, 10)).max() <= 6


def test_a_noisy_picture_falls_to_jpeg_within_the_budget() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    data = style_images.encode_style_image(noise)
    assert data[:2] == b"\xff\xd8" and len(data) <= style_images.SENT_STYLE_IMAGE_BYTES


def test_a_picture_that_fits_no_budget_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(style_images, "SENT_STYLE_IMAGE_BYTES", 200)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"^me.png: \d+ bytes even as JPEG at quality 30; sent"):
        style_images.encode_style_image(noise, "me.png")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_png(513, 512), "513x512 pixels; style pictures are limited to 262144 pixels"),
        (b"\xff" * (128 * 1024 + 1), "131073 bytes; style pictures are limited to 128 KiB"),
        (b"GIF89a not really", "not a readable picture"),
    ],
)
def test_a_sent_picture_is_held_to_the_sent_limits(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^picture 2: {message}"):
        decode_sent_style_image(data, "picture 2")


def test_the_style_name_of_sent_pictures_depends_on_every_byte_and_the_order() -> None:
    name = picture_style_name([b"ab", b"c"])
    assert name == picture_style_name([b"ab", b"c"]) and name.startswith("picture-")
    assert len(name) == len("picture-") + 16
    assert len({name, picture_style_name([b"a", b"bc"]), picture_style_name([b"c", b"ab"])}) == 3


def test_at_most_four_pictures_are_sent(tmp_path: Path) -> None:
    for index in range(style_images.MAX_SENT_STYLE_IMAGES + 1):
        cv2.imwrite(str(tmp_path / f"{index}.png"), np.full((20, 20, 3), index, np.uint8))
    with pytest.raises(ValueError, match="^5 style pictures; at most 4 can be sent$"):
        style_images.read_sent_style_images([tmp_path])
    (tmp_path / "4.png").unlink()
    sent = style_images.read_sent_style_images([tmp_path])
    assert [int(decode_sent_style_image(data)[0, 0, 0]) for data in sent] == [0, 1, 2, 3]
