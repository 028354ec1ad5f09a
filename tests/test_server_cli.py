from __future__ import annotations

from pathlib import Path

import pytest

from cartooncodec.cli import build_parser, main
from server.cli import _weights_from_env


def test_serve_arguments() -> None:
    args = build_parser().parse_args(
        ["serve", "--host", "0.0.0.0", "--port", "9000", "--preset", "tiny", "--loopback-ice"]
    )
    assert (args.host, args.port, args.preset, args.loopback_ice) == ("0.0.0.0", 9000, "tiny", True)
    assert args.token_ttl == 3600.0 and args.checkpoint is None
    limits = build_parser().parse_args(
        ["serve", "--api-key", "k", "--max-rooms", "5", "--rooms-per-minute", "2"]
    )
    assert (limits.api_key, limits.max_rooms, limits.rooms_per_minute) == ("k", 5, 2)


def test_weights_come_from_the_mounted_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTOONCODEC_WEIGHTS", str(tmp_path))
    assert _weights_from_env("lite-128") is None
    (tmp_path / "lite-128.pt").write_bytes(b"")
    assert _weights_from_env("lite-128") == str(tmp_path / "lite-128.pt")
    monkeypatch.delenv("CARTOONCODEC_WEIGHTS")
    assert _weights_from_env("lite-128") is None


def test_serve_refuses_to_start_with_an_unreadable_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "tiny.pt"
    broken.write_bytes(b"\x00" * 10)
    assert main(["serve", "--preset", "tiny", "--checkpoint", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"cartooncodec serve: error: cannot serve preset 'tiny': checkpoint {broken} is not a "
        "readable torch file"
    )
    assert err.count("\n") == 1
