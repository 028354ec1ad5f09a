import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.face_clip import portrait
from training.styles import (
    BUILTIN_STYLES,
    CLASSICAL_STYLES,
    EXEMPLAR_STYLES,
    PHOTOGRAPH,
    Palette,
    _ink_lines,
    _recolour,
    load_exemplars,
    match_style,
    stylize,
)

STYLE_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "styles"


def _pictures(rgb: tuple[int, int, int]) -> torch.Tensor:
    """Two 8x8 pictures: ``rgb`` and its half (a palette with a spread of lightness)."""
    colour = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1) / 255
    return torch.cat([colour, colour / 2]).expand(2, 3, 8, 8)


ORANGE = Palette.of(_pictures((240, 140, 40)))
BLUE = Palette.of(_pictures((40, 90, 220)))


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
    outputs |= {name: stylize(face, name, ORANGE).astype(int) for name in EXEMPLAR_STYLES}
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
    with pytest.raises(ValueError, match="'pixar' takes its colours from its pictures"):
        stylize(face, "pixar")
    with pytest.raises(ValueError, match="'cel' is a classical recipe: it takes no palette"):
        stylize(face, "cel", ORANGE)


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


def test_a_palette_is_the_pictures_lab_mean_and_spread() -> None:
    """One flat colour: its CIELAB value (OpenCV's 8-bit scale: mid grey is L* 53.6 of 100,
    neutral a and b), no spread."""
    palette = Palette.of(torch.full((3, 3, 4, 4), 0.5))
    assert palette.mean == pytest.approx((137.0, 128.0, 128.0), abs=1.0)
    assert palette.std == (0.0, 0.0, 0.0)
    assert ORANGE.mean[2] > 128 + 40 and BLUE.mean[2] < 128 - 40  # b: yellow against blue
    with pytest.raises(ValueError, match="expected Nx3xHxW pictures"):
        Palette.of(torch.rand(3, 8, 8))


@pytest.mark.parametrize("name", sorted(EXEMPLAR_STYLES))
def test_an_exemplar_style_renders_its_look_in_its_pictures_colours(
    face: np.ndarray, name: str
) -> None:
    """Deterministic, a changed image, and the colours follow the palette: the same face in an
    orange palette is yellower (CIELAB b) than in a blue one."""
    out = stylize(face, name, ORANGE)
    assert out.shape == face.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - face).mean() > 10
    np.testing.assert_array_equal(out, stylize(face.copy(), name, ORANGE))
    yellow = cv2.cvtColor(out, cv2.COLOR_RGB2LAB)[..., 2].mean()
    blue = cv2.cvtColor(stylize(face, name, BLUE), cv2.COLOR_RGB2LAB)[..., 2].mean()
    assert yellow > blue + 20


def test_the_colours_follow_one_fixed_map_of_the_pixel() -> None:
    """A pixel is recoloured the same whatever the rest of the frame holds (a style delta can
    learn one map; with each frame's own statistics, the first version, it could not), and the
    photographs' palette taken to itself is the identity."""
    pixel = np.array([[[200, 150, 120]]], np.uint8)
    dark = np.concatenate([pixel, np.zeros((1, 7, 3), np.uint8)], axis=1)
    bright = np.concatenate([pixel, np.full((1, 7, 3), 255, np.uint8)], axis=1)
    full = (1.0, 1.0, 1.0)
    first = _recolour(dark, ORANGE, full)[0, 0]
    np.testing.assert_array_equal(first, _recolour(bright, ORANGE, full)[0, 0])
    assert first[2] < pixel[0, 0, 2] - 10  # toward orange: less blue
    same = _recolour(bright, PHOTOGRAPH, full).astype(int)
    assert np.abs(same - bright).max() <= 2  # CIELAB's 8-bit round trip


def test_pixar_is_smooth(face: np.ndarray) -> None:
    """3D animation's plastic skin: less fine detail in the cheeks and nose than the photograph
    has (4.6 against 6.2; the painted styles draw lines there, so they are not measured so)."""

    def detail(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs((grey - cv2.GaussianBlur(grey, (0, 0), 1.0))[96:160, 96:160]).mean())

    assert detail(stylize(face, "pixar", ORANGE)) < 0.8 * detail(face)


@pytest.mark.parametrize("name", sorted(EXEMPLAR_STYLES))
def test_the_picture_styles_paint_with_few_colours(face: np.ndarray, name: str) -> None:
    """Smooth or flat fills: under a quarter of the photograph's distinct colours in the
    cheeks and nose (3,501; pixar 487, disney-princess 755, anime-painting 600)."""

    def colours(image: np.ndarray) -> int:
        return len(np.unique(image[96:160, 96:160].reshape(-1, 3), axis=0))

    assert colours(stylize(face, name, ORANGE)) < colours(face) / 4


def test_ink_lines_are_drawn_on_dark_strokes_only() -> None:
    """A dark stroke on paper is inked, the paper and a flat picture are not, and a light
    stroke on dark paper is not (a line drawing is dark); the ink is between 0 and 1."""
    paper = np.full((32, 32, 3), 230, np.uint8)
    assert _ink_lines(paper, 1.2, 0.012, 60).max() == 0.0
    stroke = paper.copy()
    stroke[:, 15:17] = 40
    ink = _ink_lines(stroke, 1.2, 0.012, 60)
    assert ink[:, 15:17].min() > 0.9 and ink[:, :8].max() == 0.0 and ink.min() >= 0.0
    light = 255 - stroke
    assert _ink_lines(light, 1.2, 0.012, 60)[:, 15:17].max() == 0.0


@pytest.mark.parametrize(
    ("name", "ink"), [("disney-princess", (70, 35, 25)), ("anime-painting", (40, 30, 50))]
)
def test_the_painted_styles_draw_a_dark_stroke_in_their_ink(
    name: str, ink: tuple[int, int, int]
) -> None:
    """A thin dark stroke across a flat light picture comes out in the style's ink (brown,
    blue-black), the paper beside it light."""
    picture = np.full((64, 64, 3), 200, np.uint8)
    picture[:, 31:33] = 90
    out = stylize(picture, name, ORANGE).astype(int)
    assert np.abs(out[8:56, 31:33] - np.array(ink)).max() <= 5
    assert out[8:56, 20:28].mean() > 150


def test_exemplar_styles_need_their_folder_and_every_picture(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="colours from pictures: give their folder"):
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
