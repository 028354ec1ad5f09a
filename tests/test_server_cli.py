from __future__ import annotations

from pathlib import Path

import pytest

from cartooncodec.cli import build_parser, main
from server.cli import _weights_from_env
from server.settings import ServerSettings


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


def test_ice_servers_are_repeatable_and_reach_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server import app

    urls = ["stun:stun.example.org:19302", "turn:u:pw@turn.example.org:3478"]
    args = build_parser().parse_args(["serve", "--ice-server", urls[0], "--ice-server", urls[1]])
    assert args.ice_server == urls
    seen: list[ServerSettings] = []

    def stop(settings: ServerSettings) -> None:
        seen.append(settings)
        raise RuntimeError("stop before serving")

    monkeypatch.setattr(app, "check_models", stop)
    with pytest.raises(RuntimeError, match="stop before serving"):
        args.func(args)
    assert seen[0].ice_servers == tuple(urls)


def test_malformed_ice_server_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--ice-server", "turn:turn.example.org:3478"])
    assert stopped.value.code == 2
    assert (
        "argument --ice-server: ICE server 'turn:turn.example.org:3478': a TURN server needs "
        "USER:PASSWORD@ before the host" in capsys.readouterr().err
    )


def test_two_stun_servers_stop_the_server_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--ice-server", "stun:a.example", "--ice-server", "stun:b.example"]) == 1
    assert capsys.readouterr().err == (
        "cartooncodec serve: error: 2 STUN servers given: aiortc uses one, give one\n"
    )
