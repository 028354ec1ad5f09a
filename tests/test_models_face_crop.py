from pathlib import Path

import cv2
import numpy as np
import pytest

from models import face_crop
from models.face_crop import FaceBox, FaceCropper, FaceTracker, center_crop, crop
from tests.bench_clip import moving_shapes
from tests.face_clip import drifting_portrait, portrait

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    return FaceCropper()


def test_detects_the_face_in_a_portrait(cropper: FaceCropper) -> None:
    face = FaceCropper(margin=0.0).detect(portrait())
    assert face is not None
    # Grace Hopper's face (brows to chin) is centred near x 268, y 245 in the 512x600 image,
    # about 195 pixels across.
    assert abs(face.cx - 268) < 15 and abs(face.cy - 245) < 15
    assert 165 < face.side < 225
    box = cropper.detect(portrait())
    assert box is not None
    # The crop is 1.75 times the face, centred a little higher (hair), chin still inside.
    assert box.side == pytest.approx(1.75 * face.side, rel=0.01)
    assert box.cy < face.cy and box.cy + box.side / 2 > face.cy + 0.6 * face.side


def test_small_face_in_a_wide_phone_frame(cropper: FaceCropper) -> None:
    canvas = np.full((1920, 1080, 3), 90, np.uint8)  # portrait-mode 1080x1920 phone frame
    canvas[1200:1500, 700:956] = cv2.resize(portrait(), (256, 300))
    box = cropper.detect(canvas)
    assert box is not None
    # The face sits near (834, 1322) in the frame: half the portrait's coordinates, shifted.
    assert abs(box.cx - 834) < 15 and abs(box.cy - 1310) < 25
    assert 160 < box.side < 260
    square = crop(canvas, box, 64)
    assert square.std() > 20  # a face, not the flat background


def test_a_tight_crop_gives_the_frame_not_smeared_edges(cropper: FaceCropper) -> None:
    # The face fills the frame: a margin of a whole face would reach far past every edge.
    tight = np.ascontiguousarray(portrait()[135:365, 155:385])
    box = cropper.detect(tight)
    assert box is not None
    assert box.side == pytest.approx(230)
    assert box.cx - box.side / 2 >= 0 and box.cx + box.side / 2 <= 230
    assert box.cy - box.side / 2 >= 0 and box.cy + box.side / 2 <= 230
    clip = cropper.clip_box([tight, tight])
    assert clip is not None and clip.side <= 230


def test_box_inside_a_frame() -> None:
    big = FaceBox(cx=10.0, cy=50.0, side=300.0).inside(height=100, width=200)
    assert big == FaceBox(cx=50.0, cy=50.0, side=100.0)
    near_edge = FaceBox(cx=190.0, cy=20.0, side=40.0).inside(height=100, width=200)
    assert near_edge == FaceBox(cx=180.0, cy=20.0, side=40.0)


def test_no_face_gives_none(cropper: FaceCropper) -> None:
    flat = np.full((240, 320, 3), 128, np.uint8)
    assert cropper.detect(flat) is None
    # A skin-coloured disc on noise: BlazeFace scores it 0.51, under the 0.6 threshold.
    assert cropper.detect(np.ascontiguousarray(moving_shapes(frames=1)[0])) is None
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


def test_tracker_smooths_and_keeps_the_last_box_when_the_face_is_lost() -> None:
    tracker = FaceTracker(32, detect_every=1)
    flat = np.full((200, 200, 3), 90, np.uint8)
    assert np.array_equal(tracker.crop(flat), center_crop(flat, 32))  # no face seen yet
    frames = drifting_portrait(frames=3)
    first = tracker.crop(frames[0])
    box = tracker._cropper.detect(frames[0])
    assert box is not None and np.array_equal(first, crop(frames[0], box, 32))
    second = tracker.crop(frames[1])
    moved = tracker._cropper.detect(frames[1])
    assert moved is not None
    assert np.array_equal(second, crop(frames[1], box.blend(moved, 0.8), 32))  # smoothed
    # A frame without a face is cut with the last box instead of dropping out.
    assert np.array_equal(tracker.crop(flat), crop(flat, box.blend(moved, 0.8), 32))
    assert tracker.faceless == 1
    tracker.close()


def test_face_tracker_crops_the_face_square() -> None:
    tracker = FaceTracker(size=64)
    picture = portrait()
    face = tracker.crop(picture)
    assert face.shape == (64, 64, 3)
    # the crop follows the detected face, not the centre square of the picture
    assert not np.array_equal(face, center_crop(picture, 64))
    assert tracker.faceless == 0
    tracker.close()
    with pytest.raises(ValueError, match="detect_every must be >= 1"):
        FaceTracker(size=64, detect_every=0)


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


@pytest.mark.skipif(
    not (SHARED_DATA / "train" / "liveportrait__d8.jpg").is_file(),
    reason="needs ../shared/data (the portrait the Haar cascade missed)",
)
def test_finds_the_face_the_haar_cascade_missed(cropper: FaceCropper) -> None:
    image = cv2.cvtColor(
        cv2.imread(str(SHARED_DATA / "train" / "liveportrait__d8.jpg")), cv2.COLOR_BGR2RGB
    )
    face = FaceCropper(margin=0.0).detect(image)
    assert face is not None
    # 720x720 portrait, the face near (376, 383), about 250 pixels across.
    assert abs(face.cx - 376) < 25 and abs(face.cy - 383) < 25
    assert 200 < face.side < 300


def test_a_missing_mediapipe_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hasattr(face_crop.mediapipe_solution("face_mesh", "the face mesh"), "FaceMesh")

    def missing(name: str) -> None:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(face_crop.importlib, "import_module", missing)
    with pytest.raises(RuntimeError, match="the face mesh needs mediapipe .*run `make install`"):
        face_crop.mediapipe_solution("face_mesh", "the face mesh")
