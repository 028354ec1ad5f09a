import argparse
import json
from pathlib import Path

import pytest

from bench import speed
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
