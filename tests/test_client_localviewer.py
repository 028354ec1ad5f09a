"""A client rendering the other's relayed motion itself, without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from client.config import CallConfig
from client.connection import CallConnection
from client.localviewer import LocalViewer
from client.viewer import Viewer
from codec import MotionEncoder, motion_schema
from codec.keyframe import encode_keyframe, split_chunks
from pipeline import protocol
from tests.tinycall import OpenChannel, write_styled_checkpoint

pytestmark = pytest.mark.timeout(60)

STILL = np.concatenate([np.zeros(20), np.tile(np.eye(2).ravel(), 10)]).astype(np.float32)


async def until(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(round(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met in {seconds:g} s")


def sent(connection: CallConnection, label: str) -> list[str | bytes]:
    return connection.channels[label].sent  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
async def local(tmp_path: Path) -> LocalViewer:
    checkpoint = str(write_styled_checkpoint(tmp_path / "tiny.pt"))
    config = CallConfig(server="", room="", token="", preset="tiny", checkpoint=checkpoint)
    connection = CallConnection("http://127.0.0.1:9")
    connection.channels = {label: OpenChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    acks: list[bytes] = []
    viewer = LocalViewer(config, connection, Viewer(config, connection.clock), acks.append)
    viewer.acks = acks  # type: ignore[attr-defined]  # what it asked the uplink to send
    viewer.start()
    yield viewer
    await viewer.close()


async def test_relayed_key_frame_and_motion_render_here_and_are_acknowledged(
    local: LocalViewer,
) -> None:
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for chunk in split_chunks(encode_keyframe(face)):
        local.on_chunk(chunk)
    await until(lambda: local.worker.has_reference)
    local.on_prompt(0, "comic")
    await until(lambda: local.worker.active_prompt_id == 0)
    encoder = MotionEncoder(schema=motion_schema(), feedback=True)
    for seq in range(3):
        local.on_packet(encoder.encode(STILL, 1000 + 40 * seq, 0))
        await until(lambda: len(local.viewer.shown) == seq + 1)  # noqa: B023
    assert [f.seq for f in local.viewer.shown] == [0, 1, 2]
    assert all(f.prompt_id == 0 and not f.concealed for f in local.viewer.shown)
    assert local.acks == [protocol.encode_ack(seq) for seq in range(3)]  # type: ignore[attr-defined]
    assert sent(local.connection, protocol.MOTION) == []  # they leave with the uplink's motion
    style = protocol.parse_message(sent(local.connection, protocol.CONTROL)[0])
    assert style == {"type": "style", "id": 0, "name": "comic"}  # the sender hears it


async def test_broken_relayed_input_is_counted_and_a_lost_reference_asks_for_intra(
    local: LocalViewer,
) -> None:
    local.on_packet(b"\xc3\x01")  # shorter than a header
    local.on_chunk(b"\x00\x01 not a chunk")
    assert local.malformed == {protocol.MOTION: 1, protocol.CONTROL: 1}
    encoder = MotionEncoder(schema=motion_schema())
    encoder.encode(STILL, 1000, 0)  # the intra frame, lost on the way
    for seq in range(1, 4):  # inter frames that predict from it: dropped, one intra request
        local.on_packet(encoder.encode(STILL, 1000 + 40 * seq, 0))
    control = [protocol.parse_message(m) for m in sent(local.connection, protocol.CONTROL)]
    assert control == [{"type": "intra"}]
    assert local.receiver.decoder.stats.decoded == 0
