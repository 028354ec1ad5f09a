import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.checkpoint import load_checkpoint
from tests.face_clip import write_face_video
from training import cli
from training.styles import EXEMPLAR_STYLES


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
    assert args.styles.split(",") == ["sketch", "zombie", "cel", "comic", "watercolor", "pop-art"]


def test_empty_folder_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert args.func(args) == 1
    assert "no usable face clip" in capsys.readouterr().err
    args = parse(["eval", "--clips", str(tmp_path), "--preset", "tiny"])
    assert args.func(args) == 1
    assert "no usable face clip" in capsys.readouterr().err


def test_exemplar_styles_need_the_style_data_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(["train", "--data", str(tmp_path), "--out", str(tmp_path), "--styles", "pixar"])
    assert args.func(args) == 1
    assert "pixar are learned from pictures: give their folder with --style-data" in (
        capsys.readouterr().err
    )


def test_stage_two_alone_on_a_trained_checkpoint_adds_the_requested_styles(
    tmp_path: Path,
) -> None:
    """The command that trains the built-in styles on a finished stage-1 checkpoint."""
    data = tmp_path / "clips"
    data.mkdir()
    write_face_video(data / "talk.mp4", frames=10)
    styles = tmp_path / "styles"
    styles.mkdir()
    for file in EXEMPLAR_STYLES["pixar"]:
        cv2.imwrite(str(styles / file), np.full((40, 40, 3), (20, 120, 240), np.uint8))
    common = ["--data", str(data), "--preset", "tiny", "--batch-size", "2", "--device", "cpu"]
    first = parse(["train", *common, "--out", str(tmp_path / "a"), "--steps", "2", "--styles", ""])
    assert first.func(first) == 0
    checkpoint = tmp_path / "a" / "checkpoint.pt"
    argv = ["--resume", str(checkpoint), "--steps", "2", "--styles", "pixar,zombie"]
    second = parse(
        ["train", *common, "--out", str(tmp_path / "b"), *argv, "--style-data", str(styles)]
    )
    second.style_steps = 2
    assert second.func(second) == 0
    loaded = load_checkpoint(tmp_path / "b" / "checkpoint.pt", preset="tiny")
    assert loaded.meta["step"] == 2 and set(loaded.styles) == {"pixar", "zombie"}
