"""A participant's message handling, driven directly (the network path is in the call test)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codec import MotionEncoder, motion_schema
from codec.keyframe import encode_keyframe, split_chunks
from models import Renderer
from server import protocol
from server.participant import Participant
from server.settings import ServerSettings
from tests.tinycall import write_styled_checkpoint

pytestmark = pytest.mark.timeout(60)


class RecordingChannel:
    """Stands in for an open RTCDataChannel: keeps what the server sends."""

    readyState = "open"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.sent if isinstance(m, str)]


@pytest.fixture
async def participant(tmp_path: Path) -> AsyncIterator[Participant]:
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    settings = ServerSettings(preset="tiny", checkpoint=str(checkpoint))
    p = Participant("room", 0, settings, Renderer("tiny", checkpoint))
    p.channels = {label: RecordingChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    p.worker.start()
    yield p
    await p.close()


def control(p: Participant) -> RecordingChannel:
    return p.channels[protocol.CONTROL]  # type: ignore[return-value]


def test_hello_with_another_preset_is_answered_with_how_to_fix_it(participant: Participant) -> None:
    participant._on_control(protocol.encode_message("hello", preset="lite-128", capabilities=[]))
    error, hello = control(participant).messages()
    assert error["type"] == "error" and "start the client with --preset tiny" in error["message"]
    assert hello == {
        "type": "hello",
        "preset": "tiny",
        "capabilities": list(protocol.CAPABILITIES),
        "seat": 0,
    }


def test_bad_control_messages_are_counted_or_refused(participant: Participant) -> None:
    participant._on_control("{oops")
    participant._on_control(protocol.encode_message("pong", t=1, server_ms=2))
    participant._on_control(protocol.encode_message("prompt", id=1, text="x" * 201))
    participant._on_control(protocol.encode_message("prompt", id=2, text="no such style"))
    participant._on_control(b"not a chunk")
    assert participant.malformed == {protocol.CONTROL: 2}
    assert participant.refused == {"prompt": 2, "keyframe": 1}
    errors = [m["message"] for m in control(participant).messages()]
    assert "prompt 1 refused: prompt of 201 characters exceeds 200" in errors[0]
    assert "no built-in style matches 'no such style'" in errors[1]
    assert errors[2].startswith("key frame refused")


async def test_key_frame_then_motion_reaches_the_renderer(participant: Participant) -> None:
    rendered: list[Any] = []
    participant.worker.sink = lambda image, meta: rendered.append(meta)
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for chunk in split_chunks(encode_keyframe(face)):
        participant._on_control(chunk)
    for _ in range(100):
        if participant.worker.has_reference:
            break
        await asyncio.sleep(0.02)
    assert participant.worker.has_reference
    participant._on_motion(b"\x00garbage")
    encoder = MotionEncoder(schema=motion_schema())
    still = np.concatenate([np.zeros(20), np.tile(np.eye(2).ravel(), 10)]).astype(np.float32)
    participant._on_motion(encoder.encode(still, 1234, 0))  # keypoints at 0, identity Jacobians
    for _ in range(100):
        if rendered:
            break
        await asyncio.sleep(0.02)
    assert rendered[0].capture_ms == 1234 and rendered[0].seq == 0
    assert participant.malformed == {protocol.MOTION: 1}


def test_hostile_json_is_counted_and_the_call_goes_on(participant: Participant) -> None:
    participant._on_control('{"type": []}')
    participant._on_control("[" * 4000)
    participant._on_stats('{"type": {}}')
    participant._on_stats('{"type": "ping", "t": ' + "9" * 4400 + "}")
    assert participant.malformed == {protocol.CONTROL: 2, protocol.STATS: 2}
    assert not participant.closed.is_set() and control(participant).sent == []
    participant._on_stats(protocol.encode_message("ping", t=7))
    assert json.loads(participant.channels[protocol.STATS].sent[0])["t"] == 7  # type: ignore[attr-defined]


def test_ping_is_answered_with_the_server_clock(participant: Participant) -> None:
    participant._on_stats(protocol.encode_message("ping", t=42))
    participant._on_stats(protocol.encode_message("report", fps_shown=9.5, latency_p50_ms=60.0))
    (pong,) = [json.loads(m) for m in participant.channels[protocol.STATS].sent]  # type: ignore[attr-defined]
    assert pong["type"] == "pong" and pong["t"] == 42 and pong["server_ms"] >= 0
    assert participant.stats()["client_report"] == {"fps_shown": 9.5, "latency_p50_ms": 60.0}
