import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench import speed
from models.checkpoint import build_models, save_checkpoint
from models.config import get_preset
from tests.models_helpers import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    speed.register(parser.add_subparsers())
    return parser.parse_args(argv)


def test_speed_bench_writes_every_figure(tmp_path: Path) -> None:
    args = _parse(
        ["speed", "--preset", "tiny", "--device", "cpu", "--threads", "1", "--frames", "6"]
        + ["--adapt-steps", "2", "--out", str(tmp_path), "--json", str(tmp_path / "s.json")]
    )
    assert args.func(args) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    assert set(result["timings"]) == {"extract", "code", "decode", "render", "swap", "set_style"}
    assert result["timings"]["render"]["calls"] == 6
    assert all(t["mean_ms"] > 0 for t in result["timings"].values())
    assert result["adapt_s"] > 0 and result["setup"]["threads"] == 1
    assert len(result["style_delta"]["layers"]) == 4 and result["style_delta"]["bytes"] > 0
    assert [row["measure"] for row in result["tables"]["speed"]["rows"]][:4] == [
        "extract (frame -> features)",
        "code (features -> packet)",
        "decode (packet -> features)",
        "render (features -> frame)",
    ]
    assert result["timings"]["code"]["calls"] == result["timings"]["decode"]["calls"] == 6
    paths = [row["path"] for row in result["tables"]["cascade"]["rows"]]
    assert paths == [
        f"unified: render with style {speed.NEW_PROMPT!r}",  # the tiny preset has no built-ins
        "cascade: render + classical 'cel'",
        "cascade: render + CNN styliser",
    ]
    assert result["tables"]["cascade"]["rows"][0]["x unified time"] == 1.0


def test_too_few_frames_is_refused(tmp_path: Path) -> None:
    args = _parse(["speed", "--preset", "tiny", "--frames", "2", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--frames must be above 3"):
        args.func(args)


def test_versus_renders_another_checkpoint_interleaved_with_the_main_one(tmp_path: Path) -> None:
    tiny = get_preset("tiny")
    older = replace(tiny, generator=replace(tiny.generator, num_bottleneck_blocks=3))
    save_checkpoint(tmp_path / "older.pt", build_models(older))
    argv = ["speed", "--preset", "tiny", "--device", "cpu", "--threads", "1", "--frames", "6"]
    argv += ["--adapt-steps", "0", "--versus", str(tmp_path / "older.pt"), "--out", str(tmp_path)]
    args = _parse([*argv, "--json", str(tmp_path / "s.json")])
    assert args.func(args) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    versus = result["versus"]
    assert list(versus) == ["random init", str(tmp_path / "older.pt")]
    assert [timing["calls"] for timing in versus.values()] == [6 * speed.VERSUS_ROUNDS] * 2
    rows = result["tables"]["versus"]["rows"]
    assert [row["checkpoint"] for row in rows] == list(versus)
