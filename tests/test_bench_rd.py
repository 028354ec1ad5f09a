"""bench rd on a synthetic clip: structure of the outputs and sanity of the curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench.ourcodec import BASELINES
from tests.bench_clip import moving_shapes, run_bench, write_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    write_clip(folder / "shapes.mp4", moving_shapes(frames=16, size=64))
    return folder


@pytest.fixture(scope="module")
def rd_out(clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rd")
    argv = ["bench", "rd", "--clips", str(clip_dir), "--size", "64", "--crop", "center"]
    argv += ["--codecs", "x264", "x265"]
    assert run_bench([*argv, "--qps", "51", "40", "28", "--out", str(out)]) == 0
    return out


def test_rd_writes_json_with_machine_tables_and_plots(rd_out: Path) -> None:
    result = json.loads((rd_out / "rd.json").read_text())
    assert result["machine"]["cpu_cores"] >= 1
    assert result["machine"]["torch_version"]
    assert result["frames"] == {"shapes": 16}
    assert set(result["tables"]) == {"points", "bd", "lowest_rate", "equal_quality"}
    for plot in result["plots"]:
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {Path(p).name for p in result["plots"]} == {"rd_shapes.png", "rd_mean.png"}
    with (rd_out / "rd_points.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 3  # (clip + mean) x codecs x QPs


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_higher_rate_never_scores_lower(rd_out: Path, codec: str) -> None:
    rows = json.loads((rd_out / "rd.json").read_text())["tables"]["points"]["rows"]
    points = sorted(
        (r for r in rows if r["clip"] == "shapes" and r["codec"] == codec), key=lambda r: r["kbps"]
    )
    rates = [p["kbps"] for p in points]
    assert [p["setting"] for p in points] == ["qp=51", "qp=40", "qp=28"]
    assert rates == sorted(rates) and rates[0] < rates[-1]
    for metric in ("psnr", "ssim", "ms_ssim"):
        values = [p[metric] for p in points]
        assert values == sorted(values), (metric, values)
    assert points[-1]["psnr"] > 25.0  # QP 28 comes close to the source


@pytest.fixture(scope="module")
def rd_ours(clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("rd-ours")
    argv = ["bench", "rd", "--clips", str(clip_dir), "--size", "64", "--crop", "center"]
    argv += ["--preset", "tiny", "--codecs", "x264", "ours", "--qps", "51", "30"]
    argv += ["--levels", "0", "16", "--keyframe-qualities", "10", "60", "--out", str(out)]
    assert run_bench(argv) == 0
    return json.loads((out / "rd.json").read_text())


def test_ours_rate_counts_key_frame_payload_and_headers(rd_ours: dict) -> None:
    rows = rd_ours["tables"]["ours"]["rows"]
    assert {(r["codec"], r["setting"]) for r in rows} == {
        (f"ours-kq{q}", f"level={lv}") for q in (10, 60) for lv in (0, 16)
    }
    seconds = 16 / 25
    for row in rows:
        keyframe_kbps = row["keyframe_bytes"] * 8 / seconds / 1000
        assert row["kbps"] == pytest.approx(
            keyframe_kbps + row["payload_kbps"] + row["header_kbps"]
        )
    by_setting = {(r["codec"], r["setting"]): r for r in rows}
    for codec in ("ours-kq10", "ours-kq60"):  # a coarser step never costs more
        fine, coarse = by_setting[(codec, "level=0")], by_setting[(codec, "level=16")]
        assert coarse["payload_kbps"] <= fine["payload_kbps"]
    assert (
        by_setting[("ours-kq10", "level=0")]["keyframe_bytes"]
        < (by_setting[("ours-kq60", "level=0")]["keyframe_bytes"])
    )
    points = {
        (r["codec"], r["setting"]): r
        for r in rd_ours["tables"]["points"]["rows"]
        if r["clip"] == "shapes"
    }
    assert (
        points[("ours-kq60", "level=16")]["kbps"] == by_setting[("ours-kq60", "level=16")]["kbps"]
    )


def test_baselines_are_points_of_each_clip_and_of_the_mean(rd_ours: dict) -> None:
    rows = rd_ours["tables"]["points"]["rows"]
    baselines = {(r["clip"], r["codec"], r["setting"]): r for r in rows if r["codec"] in BASELINES}
    assert set(baselines) == {
        (clip, codec, setting)
        for clip in ("shapes", "mean")
        for codec, setting in (
            ("static", "kq10"),
            ("static", "kq60"),
            ("zero-motion", "uncoded reference"),
            ("x265-lowest", "qp=51"),
        )
    }
    ours = {r["setting"]: r for r in rd_ours["tables"]["ours"]["rows"] if r["codec"] == "ours-kq10"}
    static = baselines[("shapes", "static", "kq10")]
    assert static["kbps"] == pytest.approx(ours["level=0"]["keyframe_bytes"] * 8 / (16 / 25) / 1000)
    assert baselines[("shapes", "zero-motion", "uncoded reference")]["kbps"] is None
    assert 0 < baselines[("mean", "x265-lowest", "qp=51")]["ms_ssim"] < 1
    bd_codecs = {r["codec"] for r in rd_ours["tables"]["bd"]["rows"]}
    assert not bd_codecs & set(BASELINES)  # baselines are not curves


def test_ours_is_compared_with_the_anchor(rd_ours: dict) -> None:
    bd_rows = rd_ours["tables"]["bd"]["rows"]
    assert {(r["clip"], r["codec"], r["anchor"]) for r in bd_rows} == {
        (clip, f"ours-kq{q}", "x264") for clip in ("shapes", "mean") for q in (10, 60)
    }
    points = [r for r in rd_ours["tables"]["points"]["rows"] if r["codec"].startswith("ours")]
    assert all(0.0 < r["ms_ssim"] <= 1.0 and r["psnr"] > 0 for r in points)
