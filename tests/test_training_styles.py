import itertools

import numpy as np
import pytest

from tests.face_clip import portrait
from training.styles import BUILTIN_STYLES, match_style, stylize


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return np.ascontiguousarray(portrait()[100:356, 130:386])


def test_at_least_five_named_styles_with_descriptions() -> None:
    assert {"sketch", "cel", "comic", "watercolor", "pop-art"} <= set(BUILTIN_STYLES)
    assert all(style.description and style.keywords for style in BUILTIN_STYLES.values())


@pytest.mark.parametrize("name", sorted(BUILTIN_STYLES))
def test_style_keeps_shape_changes_the_image_and_is_deterministic(
    face: np.ndarray, name: str
) -> None:
    out = stylize(face, name)
    assert out.shape == face.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - face).mean() > 10
    np.testing.assert_array_equal(out, stylize(face.copy(), name))


def test_styles_differ_from_each_other(face: np.ndarray) -> None:
    outputs = {name: stylize(face, name).astype(int) for name in BUILTIN_STYLES}
    for a, b in itertools.combinations(outputs, 2):
        assert np.abs(outputs[a] - outputs[b]).mean() > 5, (a, b)


def test_sketch_is_grey(face: np.ndarray) -> None:
    out = stylize(face, "sketch")
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_prompts_select_styles_by_name_or_words() -> None:
    assert match_style("sketch") == "sketch"
    assert match_style("a pencil drawing of me") == "sketch"
    assert match_style("Andy Warhol pop art") == "pop-art"
    assert match_style("something else entirely") is None


def test_bad_input_is_refused(face: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown built-in style 'oil'.*sketch"):
        stylize(face, "oil")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        stylize(face.astype(np.float32), "cel")
