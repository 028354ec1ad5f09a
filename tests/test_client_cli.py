from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cartooncodec.cli import build_parser
from client.cli import _create_room_file, _room_and_token, parse_prompt_schedule
from server.app import running_server
from server.settings import ServerSettings
from server.tokens import TokenSigner


def test_prompt_schedule_parses() -> None:
    assert parse_prompt_schedule("0:sketch, 8.5:comic book,") == [
        (0.0, "sketch"),
        (8.5, "comic book"),
    ]


@pytest.mark.parametrize("text", ["sketch", "x:sketch", "-1:sketch", "3:"])
def test_bad_prompt_schedule_says_how_to_write_it(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="write SECONDS:PROMPT"):
        parse_prompt_schedule(text)


def test_call_needs_a_room(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["call", "--room", "r"])
    assert args.func(args) == 1
    assert "--room ID --token T, or --room-file FILE --seat 0|1" in capsys.readouterr().err


def test_room_file_gives_the_seat_token(tmp_path: Path) -> None:
    path = tmp_path / "room.json"
    path.write_text(json.dumps({"room": "r1", "tokens": ["t0", "t1"]}))
    args = build_parser().parse_args(["call", "--room-file", str(path), "--seat", "1"])
    assert _room_and_token(args) == ("r1", "t1")
    path.write_text("[]")
    with pytest.raises(ValueError, match="not a room file from --create-room"):
        _room_and_token(args)


async def test_create_room_writes_joinable_tokens(tmp_path: Path) -> None:
    settings = ServerSettings(preset="tiny", token_secret=b"s")
    async with running_server(settings) as url:
        assert await _create_room_file(url, tmp_path / "room" / "room.json") == 0
    room = json.loads((tmp_path / "room" / "room.json").read_text())
    assert [TokenSigner(b"s").verify(t, room["room"]).seat for t in room["tokens"]] == [0, 1]


def test_create_room_without_server_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["call", "--server", "http://127.0.0.1:9", "--create-room", str(tmp_path / "r.json")]
    )
    assert args.func(args) == 1
    assert "cannot create a room at http://127.0.0.1:9" in capsys.readouterr().err


def test_call_passes_its_ice_servers_and_render_mode_to_the_client(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from client import callclient

    configs: list[callclient.CallConfig] = []

    class Stopped(callclient.CallError):
        pass

    def record(config: callclient.CallConfig) -> None:
        configs.append(config)
        raise Stopped("recorded")

    monkeypatch.setattr(callclient, "CallClient", record)
    urls = ["stun:stun.example.org", "turn:u:pw@turn.example.org?transport=tcp"]
    ice = ["--ice-server", urls[0], "--ice-server", urls[1]]
    args = build_parser().parse_args(["call", "--room", "r", "--token", "t", *ice])
    assert args.func(args) == 1
    assert configs[0].ice_servers == tuple(urls) and not configs[0].render_locally
    local = build_parser().parse_args(["call", "--room", "r", "--token", "t", "--render-locally"])
    assert local.func(local) == 1
    assert configs[1].render_locally and configs[1].ice_servers == ()
    assert capsys.readouterr().err == "cartooncodec call: recorded\n" * 2


def test_call_refuses_a_malformed_ice_server(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["call", "--ice-server", "stun:u:secret@stun.example.org"])
    err = capsys.readouterr().err
    assert "a STUN server takes no credentials" in err and "secret" not in err


def test_call_sends_its_style_pictures_re_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from client import callclient
    from models.style_images import decode_sent_style_image

    configs: list[callclient.CallConfig] = []

    def record(config: callclient.CallConfig) -> None:
        configs.append(config)
        raise callclient.CallError("recorded")

    monkeypatch.setattr(callclient, "CallClient", record)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((900, 600, 3), 77, np.uint8))
    argv = ["call", "--room", "r", "--token", "t", "--style-image", str(tmp_path / "a.png")]
    args = build_parser().parse_args(argv)
    assert args.func(args) == 1
    (picture,) = configs[0].style_images
    assert decode_sent_style_image(picture).shape == (512, 341, 3)


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("notes.png", b"a shopping list", "notes.png: not a readable picture"),
        ("gone.png", None, "gone.png: no such file or folder"),
    ],
)
def test_call_refuses_a_bad_style_picture_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes | None, said: str
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    argv = ["call", "--room", "r", "--token", "t", "--style-image", str(tmp_path / name)]
    args = build_parser().parse_args(argv)
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("cartooncodec call: ") and said in err and err.count("\n") == 1
