import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.face_clip import portrait
from training.styles import (
    BUILTIN_STYLES,
    CLASSICAL_STYLES,
    EXEMPLAR_STYLES,
    load_exemplars,
    match_style,
    stylize,
)

STYLE_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "styles"


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return np.ascontiguousarray(portrait()[100:356, 130:386])


def test_every_builtin_style_has_a_recipe_or_exemplars() -> None:
    assert set(CLASSICAL_STYLES) | set(EXEMPLAR_STYLES) == set(BUILTIN_STYLES)
    assert not set(CLASSICAL_STYLES) & set(EXEMPLAR_STYLES)
    assert {"disney-princess", "pixar", "zombie", "anime-painting"} <= set(BUILTIN_STYLES)
    assert all(style.description and style.keywords for style in BUILTIN_STYLES.values())


@pytest.mark.parametrize("name", sorted(CLASSICAL_STYLES))
def test_style_keeps_shape_changes_the_image_and_is_deterministic(
    face: np.ndarray, name: str
) -> None:
    out = stylize(face, name)
    assert out.shape == face.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - face).mean() > 10
    np.testing.assert_array_equal(out, stylize(face.copy(), name))


def test_styles_differ_from_each_other(face: np.ndarray) -> None:
    outputs = {name: stylize(face, name).astype(int) for name in CLASSICAL_STYLES}
    for a, b in itertools.combinations(outputs, 2):
        assert np.abs(outputs[a] - outputs[b]).mean() > 5, (a, b)


def test_sketch_is_grey(face: np.ndarray) -> None:
    out = stylize(face, "sketch")
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_sketch_keeps_the_light_and_shade_of_the_face(face: np.ndarray) -> None:
    """A pencil drawing over the face's tones, not white paper with lines (which the generator
    could not follow): it follows the grey image (pencilSketch's lines alone: -0.23), yet is
    no grey photo."""
    out = stylize(face, "sketch")[..., 0].astype(float)
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(float)
    assert np.corrcoef(out.ravel(), grey.ravel())[0, 1] > 0.8
    assert np.abs(out - grey).mean() > 20


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
    with pytest.raises(ValueError, match="'pixar' has no classical recipe"):
        stylize(face, "pixar")


def test_zombie_is_pale_and_green(face: np.ndarray) -> None:
    out = stylize(face, "zombie").reshape(-1, 3).astype(float)
    hsv = cv2.cvtColor(face, cv2.COLOR_RGB2HSV)
    assert out[:, 1].mean() > out[:, 0].mean() and out[:, 1].mean() > out[:, 2].mean()
    saturation = cv2.cvtColor(stylize(face, "zombie"), cv2.COLOR_RGB2HSV)[..., 1].mean()
    assert saturation < hsv[..., 1].mean()


def test_pop_art_is_bold_and_keeps_the_skin_warm(face: np.ndarray) -> None:
    """Saturated, few colours, the face's hues kept (a face turned blue is one the face mesh
    cannot find, so its motion could not be judged)."""
    out = stylize(face, "pop-art")
    before, after = cv2.cvtColor(face, cv2.COLOR_RGB2HSV), cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
    lit = after[..., 2] > 0  # not the ink
    assert after[..., 1][lit].mean() > 1.15 * before[..., 1].mean()  # 157 against 131
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 3**3 + 1  # 3 levels a channel, ink
    centre = (slice(96, 160), slice(96, 160))  # the cheeks and nose
    cheeks = after[centre][after[centre][..., 2] > 0]
    assert np.median(cheeks[:, 0]) < 20 or np.median(cheeks[:, 0]) > 165  # red to orange


def test_exemplar_styles_need_their_folder_and_every_picture(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="learned from pictures: give their folder"):
        load_exemplars("pixar", None, 32)
    with pytest.raises(ValueError, match="lacks echomimic__a.png"):
        load_exemplars("pixar", tmp_path, 32)
    with pytest.raises(ValueError, match="'sketch' is not an exemplar style"):
        load_exemplars("sketch", tmp_path, 32)


def test_exemplar_styles_load_from_a_folder(tmp_path: Path) -> None:
    for index, file in enumerate(EXEMPLAR_STYLES["pixar"]):
        colour = np.full((40, 60, 3), 40 * index, np.uint8)
        cv2.imwrite(str(tmp_path / file), colour)
    exemplars = load_exemplars("pixar", tmp_path, 32)
    assert exemplars.shape == (len(EXEMPLAR_STYLES["pixar"]), 3, 32, 32)
    assert float(exemplars[1].mean()) == pytest.approx(40 / 255, abs=1e-3)


@pytest.mark.skipif(not STYLE_DATA.is_dir(), reason="../shared/data/styles is not on this machine")
def test_the_exemplar_sets_exist_in_the_shared_styles_folder() -> None:
    for name, files in EXEMPLAR_STYLES.items():
        missing = [file for file in files if not (STYLE_DATA / file).is_file()]
        assert not missing, (name, missing)
