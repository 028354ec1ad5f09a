"""The sending side of a call client, without a server: what goes on which channel."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from client.config import CallConfig
from client.connection import CallConnection
from client.uplink import Uplink
from codec.keyframe import KeyframeAssembler
from codec.packet import unpack_packet
from models.style_images import encode_style_image, picture_style_name
from pipeline import protocol
from tests.mediaclips import write_clip_with_sound
from tests.tinycall import OpenChannel, write_styled_checkpoint


def offline_uplink(tmp_path: Path) -> Uplink:
    """An Uplink of the tiny preset whose channels are open and keep what is sent."""
    checkpoint = str(write_styled_checkpoint(tmp_path / "tiny.pt"))
    config = CallConfig(
        server="http://127.0.0.1:9", room="r", token="t", preset="tiny", checkpoint=checkpoint
    )
    connection = CallConnection(config.server)
    connection.channels = {label: OpenChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    return Uplink(config, connection)


def sent_on(uplink: Uplink, label: str) -> list[str | bytes]:
    return uplink.connection.channels[label].sent  # type: ignore[attr-defined, no-any-return]


def test_style_pictures_are_announced_then_sent_in_chunks_as_the_next_prompt(
    tmp_path: Path,
) -> None:
    client = offline_uplink(tmp_path)
    client.send_prompt("sketch")
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    pictures = [encode_style_image(noise), encode_style_image(noise[::-1].copy())]
    client.send_style_images(pictures)
    sent = sent_on(client, protocol.CONTROL)
    announcement = protocol.parse_message(sent[1])
    assert announcement == {
        "type": "style_image",
        "id": 1,
        "transfers": [zlib.crc32(data) for data in pictures],
    }
    assembler = KeyframeAssembler(max_bytes=protocol.MAX_KEYFRAME_BYTES)
    received = [data for chunk in sent[2:] if (data := assembler.add(chunk)) is not None]
    assert received == pictures and len(sent) > 4  # each picture needed several chunks
    assert client.style_image_bytes == sum(len(chunk) for chunk in sent[2:])
    assert client.prompts[-1].id == 1 and client.prompts[-1].text == picture_style_name(pictures)


async def test_a_style_picture_that_cannot_be_read_is_said_and_nothing_is_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = offline_uplink(tmp_path)
    (tmp_path / "notes.png").write_text("a shopping list")
    await client.send_style_images_from([str(tmp_path / "notes.png")])
    assert "style picture not sent: " in caplog.text and "notes.png: not a readable picture" in (
        caplog.text
    )
    assert sent_on(client, protocol.CONTROL) == [] and client.prompt_id == -1


def test_acknowledgements_of_frames_not_sent_are_counted_and_change_nothing(
    tmp_path: Path,
) -> None:
    client = offline_uplink(tmp_path)
    encoder = client.sender.encoder
    features = np.zeros(client.sender.schema.size, np.float32)
    for index in range(3):
        encoder.encode(features, index * 40)
    client.on_ack(protocol.encode_ack(1))
    assert encoder.acknowledged == 1 and client.acks_refused == 0
    client.on_ack(protocol.encode_ack(9))  # frame 9 was never sent
    client.on_ack(b"\xa1")  # too short to be an acknowledgement
    client.on_ack("1")  # text on the motion channel
    assert encoder.acknowledged == 1 and client.acks_refused == 3


async def test_bundled_frames_and_a_waiting_ack_leave_as_one_message(tmp_path: Path) -> None:
    checkpoint = str(write_styled_checkpoint(tmp_path / "tiny.pt"))
    config = CallConfig(
        server="", room="", token="", preset="tiny", checkpoint=checkpoint, fps=50.0, bundle=2
    )
    connection = CallConnection(config.server)
    connection.channels = {label: OpenChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    uplink = Uplink(config, connection)
    uplink.acknowledge(protocol.encode_ack(8))
    uplink.acknowledge(protocol.encode_ack(9))  # replaces 8, still waiting
    sending = asyncio.create_task(uplink.send_motion())
    while uplink.frames_sent < 6:
        await asyncio.sleep(0.02)
    sending.cancel()
    await uplink.close()
    messages = sent_on(uplink, protocol.MOTION)
    items = [protocol.unbundle(m) for m in messages]  # type: ignore[arg-type]
    assert uplink.messages_sent == len(messages) == uplink.frames_sent // 2
    assert items[0][-1] == protocol.encode_ack(9)  # the ack rode with the first two frames
    assert [len(i) for i in items] == [3] + [2] * (len(items) - 1)
    assert all(unpack_packet(p).seq == n for n, p in enumerate(x for i in items for x in i[:2]))
    assert uplink.motion_bytes == sum(len(x) for i in items for x in i[:2])


def test_a_bundle_of_more_frames_than_a_message_holds_is_refused() -> None:
    with pytest.raises(ValueError, match="bundle takes 1 to 3 frames, got 4"):
        CallConfig(server="", room="", token="", bundle=4)


async def test_a_video_files_pictures_and_sound_share_one_origin_on_the_call_clock(
    tmp_path: Path,
) -> None:
    """The input file's tone sounds over 0.5-0.7 s: the sound the uplink sends for the capture
    time of the picture of 0.5-0.6 s is the tone, and for that of 0.3-0.4 s it is quiet."""
    checkpoint = str(write_styled_checkpoint(tmp_path / "tiny.pt"))
    clip = tmp_path / "clip.mp4"
    write_clip_with_sound(clip, tone_s=(0.5, 0.7))  # grey level 10 × the picture's index
    config = CallConfig(
        server="", room="", token="", preset="tiny", checkpoint=checkpoint, input=str(clip)
    )
    connection = CallConnection(config.server)
    connection.clock.offset_ms = 7_000.0  # the call clock is not the local one
    uplink = Uplink(config, connection)
    assert uplink.audio is not None
    captured: dict[int, float] = {}  # picture -> its first capture time
    while 5 not in captured:
        image, capture_ms = await uplink.capture.next()
        captured.setdefault(round(image.mean() / 10), capture_ms)
    await uplink.close()
    assert set(captured) >= {0, 3}
    loudest = {k: np.abs(uplink.audio.source(captured[k], 960)).max() for k in (3, 5)}
    assert loudest[5] > 0.4 * 32767 and loudest[3] < 300

    broken = tmp_path / "broken.mp4"
    write_clip_with_sound(broken, tone_s=(0.5, 0.7), garbage=True)
    with pytest.raises(ValueError, match=f"cannot read the sound of {broken}"):
        Uplink(replace(config, input=str(broken)), connection)
    muted = Uplink(replace(config, input=str(broken), mute=True), connection)  # nothing to read
    await muted.close()
