from __future__ import annotations

import json

import pytest

from server.protocol import (
    MAX_PROMPT_CHARS,
    MAX_TEXT_MESSAGE_CHARS,
    ProtocolError,
    check_prompt,
    encode_message,
    parse_message,
)


def test_encoded_messages_parse_back() -> None:
    text = encode_message("prompt", id=3, text="comic")
    assert parse_message(text) == {"type": "prompt", "id": 3, "text": "comic"}
    frame = encode_message("frame", pts=90, seq=1, capture_ms=5, prompt_id=0, render_ms=1.5)
    assert parse_message(frame)["render_ms"] == 1.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00", "expected a text message"),
        ("x" * (MAX_TEXT_MESSAGE_CHARS + 1), "exceeds"),
        ("{not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"type": "launch"}), "unknown message type 'launch'"),
        (json.dumps({"text": "comic"}), "unknown message type None"),
        (json.dumps({"type": "prompt", "id": "1", "text": "comic"}), "needs 'id' of type int"),
        (json.dumps({"type": "prompt", "id": True, "text": "comic"}), "needs 'id' of type int"),
        (json.dumps({"type": "ping"}), "needs 't'"),
    ],
)
def test_malformed_messages_are_refused(data: str | bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_message(data)


def test_unknown_type_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="unknown message type"):
        encode_message("launch")


def test_prompt_length_limit() -> None:
    check_prompt("x" * MAX_PROMPT_CHARS)
    with pytest.raises(ProtocolError, match=f"201 characters exceeds {MAX_PROMPT_CHARS}"):
        check_prompt("x" * (MAX_PROMPT_CHARS + 1))
