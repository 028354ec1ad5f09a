"""bench style on the tiny preset: swap and adaptation tables, JSON and plot."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.style import PICTURE_STYLE, Swap, measure_adaptation, swap_table
from tests.bench_clip import run_bench


@pytest.fixture(scope="module")
def style_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("style")
    argv = ["bench", "style", "--preset", "tiny", "--frames", "3", "--repeats", "2"]
    argv += ["--prompts", "a red clown", "--adapt-steps", "2", "--out", str(out)]
    assert run_bench(argv) == 0
    return json.loads((out / "style.json").read_text())


def test_swaps_cycle_through_cached_styles_and_no_style(style_result: dict) -> None:
    rows = style_result["tables"]["swap"]["rows"]
    targets = [*style_result["built_in_styles"], "a red clown", "none"]
    assert [r["target"] for r in rows] == targets
    for row in rows:
        assert row["swaps"] == 2
        assert 0 < row["active_p50"] <= row["first_frame_p50"]


def test_adaptation_of_a_new_prompt_is_timed(style_result: dict) -> None:
    (row,) = style_result["tables"]["adapt"]["rows"]
    assert row["prompt"] == "a red clown" and row["seconds"] > 0
    assert (row["kind"], row["probe_steps"], row["steps"]) == ("text prompt", 3, 2)
    (adaptation,) = style_result["adaptations"]
    assert len(adaptation["frame_ms"]) == row["frames_meanwhile"]
    assert all(t < adaptation["seconds"] for t in adaptation["frame_times_s"])


def test_style_plot_and_machine_are_written(style_result: dict) -> None:
    assert style_result["machine"]["cpu_model"]
    (plot,) = style_result["plots"]
    assert Path(plot).read_bytes()[:4] == b"\x89PNG"


def test_swap_table_takes_percentiles_per_target() -> None:
    swaps = [Swap("sketch", 1.0, 5.0), Swap("sketch", 3.0, 7.0), Swap("none", 2.0, 4.0)]
    rows = swap_table(swaps).rows
    assert rows[0]["target"] == "sketch" and rows[0]["active_p50"] == pytest.approx(2.0)
    assert rows[1] == {
        "target": "none",
        "swaps": 1,
        "active_p50": 2.0,
        "active_p95": 2.0,
        "first_frame_p50": 4.0,
        "first_frame_p95": 4.0,
    }


def test_a_prompt_that_needs_no_adaptation_is_refused() -> None:
    from models import Renderer
    from models.layer_selection import AdaptationConfig
    from models.text_encoder import tiny_clip

    config = AdaptationConfig(steps=1, probe_steps=1)
    with Renderer("tiny", clip=tiny_clip(), adaptation=config) as renderer:
        renderer.set_style("a red clown").result()  # now cached
        with pytest.raises(ValueError, match="selects a built-in or already adapted style"):
            measure_adaptation(renderer, np.zeros((1, 60), np.float32), "a red clown")


def test_style_pictures_are_adapted_without_clip_and_their_steps_reported(
    tmp_path: Path,
) -> None:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    stripes = np.zeros((48, 40, 3), np.uint8)
    stripes[:, ::4] = (240, 120, 20)
    cv2.imwrite(str(pictures / "a.png"), stripes)
    argv = ["bench", "style", "--preset", "tiny", "--frames", "2", "--repeats", "1", "--prompts"]
    argv += ["--style-images", str(pictures), "--adapt-steps", "3", "--out", str(tmp_path)]
    assert run_bench(argv) == 0
    result = json.loads((tmp_path / "style.json").read_text())
    (row,) = result["tables"]["adapt"]["rows"]
    assert row["prompt"] == PICTURE_STYLE and row["kind"] == "style pictures"
    assert (row["probe_steps"], row["steps"]) == (3, 3) and row["seconds"] > 0
    assert "tiny random CLIP" in result["tables"]["adapt"]["title"]
    swapped = [r["target"] for r in result["tables"]["swap"]["rows"]]
    assert swapped == [*result["built_in_styles"], PICTURE_STYLE, "none"]
