import argparse
import dataclasses
import typing
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.checkpoint import load_checkpoint
from tests.face_clip import write_face_video
from training import cli
from training.options import Stage1Weights, Stage2Weights, TrainOptions
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


def test_train_defaults_are_the_options_defaults() -> None:
    args = parse(["train", "--data", "d", "--out", "o"])
    options = cli.dataclass_from_options(TrainOptions, args)
    assert options == TrainOptions(data=Path("d"), out=Path("o"))
    assert options.styles == ("sketch", "zombie", "cel", "comic", "watercolor", "pop-art")
    assert options.preset == "lite-128" and options.num_workers == 2 and options.augment


def other_value(kind: object, default: object) -> tuple[list[str], object]:
    """Command-line words that set a field of type ``kind`` to something but ``default``."""
    if kind is bool:
        return [], not default
    if typing.get_origin(kind) is tuple:
        return ["a,b"], ("a", "b")
    inner = [k for k in typing.get_args(kind) if k is not type(None)] or [kind]
    value = {int: 7, float: 0.5, str: "x", Path: Path("p")}[inner[0]]  # type: ignore[index]
    return [str(value)], value


def test_every_train_option_reaches_its_field() -> None:
    expected: dict[str, object] = {}
    argv = ["train"]
    nested = (
        (Stage1Weights, "weights"),
        (Stage2Weights, "style_weights"),
    )
    for owner, prefix in ((TrainOptions, ""), *((cls, f"{name}_") for cls, name in nested)):
        hints = typing.get_type_hints(owner)
        for item in dataclasses.fields(owner):
            if dataclasses.is_dataclass(hints[item.name]):
                continue
            dest = prefix + item.name
            words, value = other_value(hints[item.name], item.default)
            flag = item.metadata.get("flag", "--" + dest.replace("_", "-"))
            if hints[item.name] is bool and item.default:
                flag = "--no-" + flag.removeprefix("--")
            argv += [flag, *words]
            expected[dest] = value
    options = cli.dataclass_from_options(TrainOptions, parse(argv))
    seen = dict(vars(options))
    for _, name in nested:
        seen |= {f"{name}_{k}": v for k, v in vars(seen.pop(name)).items()}
    assert seen == expected
    assert len(expected) == len(dataclasses.fields(TrainOptions)) - 2 + 7 + 5
    assert "--workers" in argv and "--no-augment" in argv and "--weights-l1" in argv
    assert "--style-weights-structure" in argv


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
    assert "pixar take their colours from pictures: give their folder with --style-data" in (
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
