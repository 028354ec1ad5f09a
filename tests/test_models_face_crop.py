import numpy as np
import pytest

from models.face_crop import FaceBox, FaceCropper, center_crop, crop
from tests.face_clip import drifting_portrait, portrait


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    return FaceCropper()


def test_detects_the_face_in_a_portrait(cropper: FaceCropper) -> None:
    box = cropper.detect(portrait())
    assert box is not None
    # Grace Hopper's face is around x 265, y 230 in the 512x600 image.
    assert 220 < box.cx < 310 and 180 < box.cy < 290
    assert 250 < box.side < 550


def test_no_face_gives_none(cropper: FaceCropper) -> None:
    flat = np.full((240, 320, 3), 128, np.uint8)
    assert cropper.detect(flat) is None
    assert cropper.clip_box([flat, flat]) is None
    assert cropper.clip_box([]) is None


def test_crop_has_the_requested_size_and_pads_outside_the_image() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    image[:, 99] = 255  # the last column, repeated outside the image
    out = crop(image, FaceBox(cx=100.0, cy=50.0, side=100.0), 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # Left half: the image's right half; right half: beyond the image, its edge repeated.
    assert (out[:, :28] == 200).all() and (out[:, 34:] == 255).all()
    assert center_crop(np.zeros((50, 80, 3), np.uint8), 16).shape == (16, 16, 3)


def test_clip_box_is_one_stable_box_for_a_moving_face(cropper: FaceCropper) -> None:
    frames = drifting_portrait(frames=8)
    box = cropper.clip_box(list(frames))
    assert box is not None
    singles = [cropper.detect(f) for f in frames]
    assert all(b is not None for b in singles)
    # The clip box covers the face's whole travel: at least as big as the median single box.
    assert box.side >= float(np.median([b.side for b in singles if b is not None]))


def test_live_crop_smooths_and_keeps_the_last_box_when_the_face_is_lost() -> None:
    live = FaceCropper(smoothing=0.5)
    flat = np.full((200, 200, 3), 90, np.uint8)
    assert live.crop_live(flat, 32) is None  # no face seen yet
    frames = drifting_portrait(frames=3)
    first = live.crop_live(frames[0], 32)
    assert first is not None and first.shape == (32, 32, 3)
    # A frame without a face keeps rendering from the last box instead of dropping out.
    kept = live.crop_live(flat, 32)
    assert kept is not None and kept.shape == (32, 32, 3)
    live.reset()
    assert live.crop_live(flat, 32) is None


def test_bad_input_is_refused_with_a_reason(cropper: FaceCropper) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        cropper.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        cropper.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="margin"):
        FaceCropper(margin=-1)
    with pytest.raises(ValueError, match="smoothing"):
        FaceCropper(smoothing=1.0)
    with pytest.raises(ValueError, match="size"):
        crop(np.zeros((10, 10, 3), np.uint8), FaceBox(5, 5, 5), 0)
