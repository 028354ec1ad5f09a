import argparse
from pathlib import Path

import pytest

from training import cli


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cartooncodec")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_help_explains_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "eval"):
        with pytest.raises(SystemExit) as exit_info:
            parse([command, "--help"])
        assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--resume" in text and "torchrun" in text and "--max-minutes" in text
    assert "--json" in text and "kbps" in text


def test_train_defaults() -> None:
    args = parse(["train", "--data", "d", "--out", "o"])
    assert args.preset == "lite-128"
    assert args.styles.split(",") == ["sketch", "cel", "comic", "watercolor", "pop-art"]


def test_empty_folder_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert args.func(args) == 1
    assert "no usable face clip" in capsys.readouterr().err
    args = parse(["eval", "--clips", str(tmp_path), "--preset", "tiny"])
    assert args.func(args) == 1
    assert "no usable face clip" in capsys.readouterr().err
