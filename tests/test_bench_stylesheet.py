"""bench stylesheet on the tiny preset: one PNG of every style, and the structure table."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.clips import load_bench_clips
from bench.landmarks import FaceLandmarker
from bench.stylesheet import (
    JUDGED_RESTYLINGS,
    LABEL_WIDTH,
    _face,
    _recipe_distance,
    style_sheet,
)
from client.capture import TalkingPortrait
from models.checkpoint import build_models, load_models, save_checkpoint
from models.config import get_preset
from models.style_delta import StyleDelta
from tests.bench_clip import run_bench, write_clip
from tests.face_clip import portrait, write_face_video
from training.styles import EXEMPLAR_STYLES


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("sheet")
    torch.manual_seed(0)
    models = build_models(get_preset("tiny"))
    weight = models.generator.final.weight
    styles = {
        name: StyleDelta(name, ("final",), {"final.weight": 0.3 * torch.randn_like(weight)})
        for name in ("sketch", "pixar", "mine")
    }
    checkpoint = save_checkpoint(folder / "tiny.pt", models, styles=styles)
    clips = folder / "clips"
    clips.mkdir()
    for index in range(2):
        write_face_video(clips / f"talk{index}.mp4", frames=6)
    pictures = folder / "styles"
    pictures.mkdir()
    for file in EXEMPLAR_STYLES["pixar"]:
        cv2.imwrite(str(pictures / file), np.full((40, 40, 3), (20, 120, 240), np.uint8))
    out = folder / "out"
    argv = ["bench", "stylesheet", "--preset", "tiny", "--checkpoint", str(checkpoint)]
    argv += ["--clips", str(clips), "--style-data", str(pictures), "--out", str(out)]
    assert run_bench(argv) == 0
    return out, json.loads((out / "stylesheet.json").read_text())


def test_the_sheet_has_a_row_per_style_and_two_columns_per_face(
    result: tuple[Path, dict],
) -> None:
    out, _ = result
    sheet = cv2.imread(str(out / "stylesheet.png"))
    size = 32
    rows = 2 + 3  # frames, none, three styles
    assert sheet.shape[0] == rows * size
    # label | 2 faces x (still, moving) | gap | pixar's recipe and up to 3 of its pictures
    assert sheet.shape[1] == LABEL_WIDTH + 4 * size + size // 4 + 4 * size


def test_the_structure_table_gives_a_keypoint_distance_per_style(
    result: tuple[Path, dict],
) -> None:
    _, report = result
    rows = report["tables"]["structure"]["rows"]
    assert [row["style"] for row in rows] == ["sketch", "pixar", "mine"]
    assert all(row["keypoint_px"] > 0 for row in rows)
    # This checkpoint has no structure detector: the keypoint detector measures both.
    assert [row["codec_keypoint_px"] for row in rows] == [row["keypoint_px"] for row in rows]
    # The face mesh judges 2 faces x (still, moving), where it finds a face in both renders.
    for row in rows:
        assert 0 <= row["landmark_pairs"] <= 4
        assert np.isfinite(row["landmark_px"]) == (row["landmark_pairs"] > 0)


def test_the_judges_table_restyles_the_unstyled_render(result: tuple[Path, dict]) -> None:
    _, report = result
    rows = report["tables"]["judges"]["rows"]
    assert tuple(row["restyling"] for row in rows) == JUDGED_RESTYLINGS
    # a random keypoint detector reads colour: turning the render grey moves its keypoints
    assert all(row["codec_keypoint_px"] > 0 for row in rows)


def test_the_recipe_table_has_the_styles_whose_recipe_is_known(result: tuple[Path, dict]) -> None:
    """sketch (classical) and pixar (its pictures given); not the user's own style."""
    _, report = result
    rows = report["tables"]["recipe"]["rows"]
    assert [row["style"] for row in rows] == ["sketch", "pixar"]
    for row in rows:
        assert row["plain"] > 0 and row["styled"] > 0
        assert row["plain"] != row["styled"]  # the random delta changed the render


def test_the_recipe_distance_splits_colour_from_detail() -> None:
    """A render equal to its recipe is at 0; a uniform colour shift is all coarse (no fine
    detail differs); a drawn line is mostly fine."""
    torch.manual_seed(0)
    target = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 32, 32), 5, 1, 2)
    shifted = target + 0.1
    lined = target.clone()
    lined[..., 16, :] = 0.0
    same = _recipe_distance(shifted, target, target, lined)
    assert (same.styled, same.styled_coarse, same.styled_fine) == (0.0, 0.0, 0.0)
    assert same.plain == pytest.approx(0.1) and same.plain_coarse == pytest.approx(0.1)
    assert same.plain_fine == pytest.approx(0.0, abs=1e-6)
    # against the recipe of the render (here: the line drawn), not of the frame
    assert same.render_styled == pytest.approx(float((target - lined).abs().mean()))
    assert same.render_styled_fine > 0.5 * same.render_styled
    drawn = _recipe_distance(lined, lined, target, lined)
    assert drawn.plain_fine > drawn.plain_coarse
    assert (drawn.render_plain, drawn.render_styled_fine) == (0.0, 0.0)


def test_motion_survives_every_style_of_the_shipped_checkpoint(tmp_path: Path) -> None:
    """Issue 14's figure, judged by the face mesh (a detector this project did not train), on
    the public portrait animated as the call's synthetic source, face-cropped as bench
    stylesheet crops: it finds the face in every styled render and its landmarks stay within
    1.5 px of the unstyled render's (at most 1.11 px, pop-art; the picture styles 0.35–0.62 px
    since their recipes, 10:12 UTC) — except ``comic``'s inked
    outlines, 2.09 px on this face (its recipe alone, which moves nothing, 2.45 px here; 0.89 px
    over the eval clips), 2026-11-29 07:25 UTC. The codec's keypoint detector cannot judge a
    style: the render only made grey moves its keypoints 2.8 px here, the face mesh's 0.6 px. The
    structure detector (at most 1.45 px) is held near where it was measured, a guard against a
    drifting style."""
    talking = TalkingPortrait(portrait(), fps=25)
    write_clip(tmp_path / "synthetic.mp4", np.stack([talking.read() for _ in range(50)]))
    models = load_models("lite-128", None, torch.device("cpu"))
    assert models.structure_detector is not None
    [(name, frames)] = load_bench_clips(tmp_path, 128)
    with FaceLandmarker() as landmarker:
        _, figures, recipes, _ = style_sheet(models, [_face(models, name, frames)], {}, landmarker)
    assert len(figures) == 9
    assert all(f.landmark_pairs == 2 for f in figures.values()), figures
    assert figures["comic"].landmark_px <= 2.3, figures["comic"]
    others = {n: f.landmark_px for n, f in figures.items() if n != "comic"}
    assert max(others.values()) <= 1.5, others
    assert max(f.keypoint_px for f in figures.values()) <= 2.0, figures
    grey = recipes["grey"]
    assert grey.codec_keypoint_px > 1.5 > 1.0 > grey.landmark_px, grey
