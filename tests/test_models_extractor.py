import numpy as np
import pytest

from models.extractor import MotionExtractor
from models.motion_features import unpack_motion
from tests.models_helpers import face_like_frame, single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def extractor() -> MotionExtractor:
    return MotionExtractor(preset="tiny", device="cpu")


def test_extract_gives_valid_sixty_float_features(extractor: MotionExtractor) -> None:
    features = extractor.extract(face_like_frame(32))
    assert features.shape == (60,) and features.dtype == np.float32
    kp, jacobian = unpack_motion(features, 10)
    assert np.abs(kp).max() <= 1 and jacobian is not None


def test_other_sizes_are_resized_to_the_model_size(extractor: MotionExtractor) -> None:
    assert extractor.size == 32
    large = np.repeat(np.repeat(face_like_frame(32), 4, axis=0), 4, axis=1)
    features = extractor.extract(large)
    assert np.allclose(features, extractor.extract(face_like_frame(32)), atol=0.05)
    assert extractor.extract(np.zeros((90, 60, 3), np.uint8)).shape == (60,)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((32, 32), np.uint8), "HxWx3 uint8 RGB image, got shape \\(32, 32\\)"),
        (np.zeros((32, 32, 3), np.float32), "dtype float32"),
        (np.zeros((8, 64, 3), np.uint8), "frame 64x8 is smaller than 16 px"),
        ([[0, 0, 0]], "numpy array, got list"),
    ],
)
def test_bad_frames_are_refused(extractor: MotionExtractor, frame: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        extractor.extract(frame)  # type: ignore[arg-type]
