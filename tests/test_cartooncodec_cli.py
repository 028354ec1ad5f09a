"""The top-level dispatcher: a failing command ends with one line and exit code 1."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.call import CALL_FPS
from cartooncodec import cli, demo


def failing(exc: Exception) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise exc

    return run


@pytest.fixture
def broken_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cartooncodec decode` raising what a deep failure would raise."""
    original = cli.build_parser

    def build() -> argparse.ArgumentParser:
        parser = original()
        decode = parser._subparsers._group_actions[0].choices["decode"]  # type: ignore[union-attr,index]
        decode.set_defaults(func=failing(RuntimeError("checkpoint x.pt:\n  size mismatch")))
        return parser

    monkeypatch.setattr(cli, "build_parser", build)


@pytest.mark.usefixtures("broken_decode")
def test_a_failure_is_one_line_and_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["decode", "in.ccv", "-o", "out.mp4"]) == 1
    err = capsys.readouterr().err
    assert err == "cartooncodec decode: error: checkpoint x.pt: size mismatch\n"


@pytest.mark.usefixtures("broken_decode")
def test_verbose_adds_the_traceback(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert cli.main(["decode", "in.ccv", "-o", "out.mp4", "-v"]) == 1
    assert capsys.readouterr().err == "cartooncodec decode: error: checkpoint x.pt: size mismatch\n"
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "Traceback (most recent call last)" in caplog.text


def test_without_verbose_no_traceback_is_logged(
    caplog: pytest.LogCaptureFixture, broken_decode: None
) -> None:
    assert cli.main(["decode", "in.ccv", "-o", "out.mp4"]) == 1
    assert caplog.records == []


def test_an_exception_without_a_message_is_named() -> None:
    assert cli.one_line(KeyError()) == "KeyError"
    assert cli.one_line(ValueError(" a\n\tb ")) == "a b"


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--data", "given"], "from-env", Path("given")),
        ([], "from-env", Path("from-env")),
    ],
)
def test_demo_data_is_the_option_else_the_environment(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str, expected: Path
) -> None:
    seen: list[demo.DemoOptions] = []

    class Stopped(Exception):
        pass

    async def record(options: demo.DemoOptions) -> None:
        seen.append(options)
        raise Stopped

    monkeypatch.setattr(demo, "run_demo", record)
    monkeypatch.setenv("CARTOONCODEC_DATA", env)
    args = cli.build_parser().parse_args(["demo", *argv])
    with pytest.raises(Stopped):
        args.func(args)
    assert seen[0].data == expected


def test_bench_call_captures_at_the_demos_rate() -> None:
    assert CALL_FPS == cli.DEMO_FPS == cli.build_parser().parse_args(["demo"]).fps
