"""A participant's message handling, driven directly (the network path is in the call test)."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCSessionDescription

from codec import MotionEncoder, motion_schema
from codec.concealment import MAX_CONCEALED_FRAMES
from codec.keyframe import KeyframeAssembler, encode_keyframe, split_chunks
from models import Renderer
from models.layer_selection import AdaptationConfig
from models.style_images import encode_style_image, picture_style_name
from pipeline import protocol
from pipeline.meters import Throttle
from pipeline.renderworker import FrameMeta
from server.keyframes import KeyframeDecodes
from server.participant import Participant
from server.settings import ServerSettings
from tests.tinycall import make_offer, recorded_configurations, write_styled_checkpoint

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
    keyframes = KeyframeDecodes(threads=1, queue=0, max_side=settings.max_keyframe_side)
    p = Participant("room", 0, settings, lambda: Renderer("tiny", checkpoint), keyframes)
    p.channels = {label: RecordingChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    p.worker.start()
    yield p
    await p.close()
    keyframes.close()


async def until(condition: Any, seconds: float = 5.0) -> None:
    for _ in range(round(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met in {seconds:g} s")


def control(p: Participant) -> RecordingChannel:
    return p.channels[protocol.CONTROL]  # type: ignore[return-value]


SCHEMA = motion_schema().fingerprint()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (its data is a 1x1 picture's)."""
    small = encode_style_image(np.zeros((1, 1, 3), np.uint8))
    assert small.startswith(b"\x89PNG")
    header = b"IHDR" + struct.pack(">II", width, height) + small[24:29]
    return small[:12] + header + struct.pack(">I", zlib.crc32(header)) + small[33:]


def test_a_matching_hello_is_answered_with_the_servers_hello(participant: Participant) -> None:
    participant._on_control(protocol.encode_hello("tiny", SCHEMA))
    (hello,) = control(participant).messages()
    assert hello == {
        "type": "hello",
        "preset": "tiny",
        "schema": SCHEMA,
        "capabilities": list(protocol.CAPABILITIES),
        "seat": 0,
    }
    assert not participant.refused and participant.accepted


def test_hello_with_another_preset_is_answered_with_how_to_fix_it(participant: Participant) -> None:
    participant._on_control(protocol.encode_hello("lite-128", SCHEMA))
    error, hello = control(participant).messages()
    assert error == {
        "type": "error",
        "message": "the server renders preset 'tiny', the client extracts motion for "
        "'lite-128': start the client with --preset tiny",
        "fatal": True,
    }
    assert hello["type"] == "hello" and hello["preset"] == "tiny" and hello["schema"] == SCHEMA
    assert participant.refused == {"preset": 1} and not participant.accepted


@pytest.mark.parametrize(
    ("hello", "what", "said"),
    [
        (protocol.encode_hello("tiny", "0000000000000000"), "schema", "motion schema"),
        (
            protocol.encode_message("hello", preset="tiny", schema=SCHEMA, capabilities=[]),
            "capabilities",
            "capabilities differ",
        ),
    ],
)
async def test_a_mismatching_client_is_refused_and_its_motion_not_rendered(
    participant: Participant, hello: str, what: str, said: str
) -> None:
    rendered = await rendering(participant, hello)
    encoder = MotionEncoder(schema=motion_schema())
    for seq in range(3):
        participant._on_motion(encoder.encode(STILL, 1000 + 40 * seq, 0))
    await asyncio.sleep(0.3)
    assert rendered == [] and participant.concealment.frames_concealed == 0
    assert participant.receiver.decoder.stats.decoded == 0
    assert participant.refused == {what: 1, protocol.MOTION: 3}
    error = control(participant).messages()[0]
    assert error["type"] == "error" and error["fatal"] is True and said in error["message"]
    motion: RecordingChannel = participant.channels[protocol.MOTION]  # type: ignore[assignment]
    assert motion.sent == []  # nothing decoded, nothing acknowledged


async def test_motion_before_a_hello_is_not_rendered(participant: Participant) -> None:
    rendered: list[FrameMeta] = []
    participant.worker.sink = lambda image, meta: rendered.append(meta)
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for chunk in split_chunks(encode_keyframe(face)):
        participant._on_control(chunk)
    await until(lambda: participant.worker.has_reference)
    encoder = MotionEncoder(schema=motion_schema())
    participant._on_motion(encoder.encode(STILL, 1000, 0))
    await asyncio.sleep(0.2)
    assert rendered == [] and participant.refused == {protocol.MOTION: 1}
    assert control(participant).sent == []  # nothing said: the hello may still be on its way


def test_a_hello_of_another_version_is_refused_with_the_reason(participant: Participant) -> None:
    old = json.dumps({"type": "hello", "preset": "tiny", "capabilities": []})  # no schema
    participant._on_control(old)
    (error,) = control(participant).messages()
    assert error == {
        "type": "error",
        "message": "hello refused: 'hello' message needs 'schema' of type str: use the same "
        "cartooncodec version on both",
        "fatal": True,
    }
    assert participant.refused == {"hello": 1} and not participant.malformed
    assert not participant.accepted


async def test_bad_control_messages_are_counted_or_refused(participant: Participant) -> None:
    participant._on_control("{oops")
    participant._on_control(protocol.encode_message("pong", t=1, server_ms=2))
    participant._on_control(protocol.encode_message("prompt", id=1, text="x" * 201))
    participant._on_control(b"not a chunk")
    participant._on_control(protocol.encode_message("prompt", id=2, text="no such style"))
    await until(lambda: participant.refused["prompt"] == 2)  # styles resolve on the worker
    assert participant.malformed == {protocol.CONTROL: 2}
    assert participant.refused == {"prompt": 2, "keyframe": 1}
    errors = [m["message"] for m in control(participant).messages()]
    assert "prompt 1 refused: prompt of 201 characters exceeds 200" in errors[0]
    assert errors[1].startswith("key frame refused")
    assert "prompt 2 could not be applied: no built-in style matches 'no such style'" in errors[2]


async def test_a_key_frame_too_small_for_the_renderer_is_refused(
    participant: Participant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An 8x8 key frame used to fail in an unobserved task, the client told nothing."""

    async def eight_by_eight(data: bytes) -> np.ndarray:
        return np.zeros((8, 8, 3), np.uint8)

    monkeypatch.setattr(participant.keyframes, "decode", eight_by_eight)
    for chunk in split_chunks(encode_keyframe(np.zeros((16, 16, 3), np.uint8))):
        participant._on_control(chunk)
    await until(lambda: participant.refused)
    assert participant.refused == {"keyframe": 1} and not participant.worker.has_reference
    (error,) = control(participant).messages()
    assert error["message"] == (
        "key frame refused by the renderer: frame 8x8 is smaller than 16 px"
    )


async def test_key_frames_beyond_the_servers_decodes_are_refused(
    participant: Participant,
) -> None:
    face = encode_keyframe(np.zeros((32, 32, 3), np.uint8))
    for chunk in split_chunks(face):  # decoding (the fixture admits one at a time) ...
        participant._on_control(chunk)
    for chunk in split_chunks(face):  # ... so a second one from the same client is refused
        participant._on_control(chunk)
    assert participant.refused == {"keyframe_busy": 1}
    await until(lambda: participant.worker.has_reference)
    other = await anext(participant_of(participant.keyframes))
    participant.keyframes._slots.acquire()  # another participant's decode holds the one slot
    for chunk in split_chunks(face):
        other._on_control(chunk)
    await until(lambda: other.refused)
    assert other.refused == {"keyframe_busy": 1} and participant.keyframes.refused == 1
    (error,) = control(other).messages()
    assert error["message"] == (
        "key frame refused: the server is decoding 1 key frames already: send it again later"
    )
    participant.keyframes._slots.release()
    await other.close()


async def participant_of(keyframes: KeyframeDecodes) -> AsyncIterator[Participant]:
    p = Participant("room", 1, ServerSettings(preset="tiny"), lambda: None, keyframes)
    p.channels = {label: RecordingChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    yield p


def test_refusals_sent_to_the_client_carry_no_server_path(participant: Participant) -> None:
    participant.refuse("prompt", "style cache /var/lib/cartooncodec/styles/x.pt is corrupt")
    (error,) = control(participant).messages()
    assert error["message"] == "style cache x.pt is corrupt"


async def test_a_renderer_that_cannot_be_built_ends_only_this_call() -> None:
    def broken() -> Any:
        raise ValueError("checkpoint /srv/weights/lite-128.pt: generator shape mismatch")

    keyframes = KeyframeDecodes(threads=1, queue=0, max_side=64)
    p = Participant("room", 0, ServerSettings(preset="tiny"), broken, keyframes)
    p.channels = {label: RecordingChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    p.worker.start()
    await asyncio.wait_for(p.closed.wait(), 10)
    assert p.refused == {"renderer": 1}
    (error,) = control(p).messages()
    assert error["message"] == "the server could not start rendering your face: call again later"
    assert error["fatal"] is True
    keyframes.close()


STILL = np.concatenate([np.zeros(20), np.tile(np.eye(2).ravel(), 10)]).astype(np.float32)


async def rendering(participant: Participant, hello: str | None = None) -> list[FrameMeta]:
    """Send ``hello`` (default: one that matches) and a key frame; returns the list the metadata
    of every rendered frame goes to."""
    rendered: list[FrameMeta] = []
    participant.worker.sink = lambda image, meta: rendered.append(meta)
    participant._on_control(hello or protocol.encode_hello("tiny", SCHEMA))
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for chunk in split_chunks(encode_keyframe(face)):
        participant._on_control(chunk)
    await until(lambda: participant.worker.has_reference)
    return rendered


async def test_key_frame_then_motion_reaches_the_renderer(participant: Participant) -> None:
    rendered = await rendering(participant)
    participant._on_motion(b"\x00garbage")
    encoder = MotionEncoder(schema=motion_schema())
    participant._on_motion(encoder.encode(STILL, 1234, 0))  # keypoints at 0, identity Jacobians
    for _ in range(100):
        if rendered:
            break
        await asyncio.sleep(0.02)
    assert rendered[0].capture_ms == 1234 and rendered[0].seq == 0
    assert participant.malformed == {protocol.MOTION: 1}
    motion: RecordingChannel = participant.channels[protocol.MOTION]  # type: ignore[assignment]
    assert motion.sent == [protocol.encode_ack(0)]  # the decoded frame, acknowledged


async def test_overdue_frames_are_concealed_then_the_face_holds(participant: Participant) -> None:
    rendered = await rendering(participant)
    encoder = MotionEncoder(schema=motion_schema(), feedback=True)
    for index in range(2):  # 40 ms apart, then the packets stop
        participant._on_motion(encoder.encode(STILL + 0.01 * index, 1000 + 40 * index, 0))
    await until(lambda: participant.concealment.frames_concealed == MAX_CONCEALED_FRAMES)
    await until(lambda: rendered and rendered[-1].seq == 1 + MAX_CONCEALED_FRAMES)
    await asyncio.sleep(0.3)  # no more after the longest run
    assert participant.stats()["frames_concealed"] == MAX_CONCEALED_FRAMES
    concealed = [(m.seq, m.capture_ms) for m in rendered if m.concealed]
    assert concealed[-1] == (6, 1240) and len(rendered) <= 2 + MAX_CONCEALED_FRAMES
    assert all(capture == 1000 + 40 * seq for seq, capture in concealed)
    participant._on_motion(encoder.encode(STILL, 1080, 0))  # frame 2 arrives after all
    await until(lambda: rendered[-1].seq == 2 and not rendered[-1].concealed)


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


async def test_the_settings_ice_servers_reach_the_peer_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server import participant as participant_module

    configurations = recorded_configurations(monkeypatch, participant_module)
    settings = ServerSettings(preset="tiny", ice_servers=("turn:u:pw@turn.example.org",))
    keyframes = KeyframeDecodes(threads=1, queue=0, max_side=64)
    p = Participant("room", 0, settings, lambda: None, keyframes)
    await p.close()
    keyframes.close()
    assert configurations[0].iceServers is not None
    [server] = configurations[0].iceServers
    assert (server.urls, server.username, server.credential) == (
        "turn:turn.example.org",
        "u",
        "pw",
    )


def send_style_pictures(participant: Participant, prompt_id: int, pictures: list[bytes]) -> None:
    """What the client does: announce the pictures, then send each as chunks."""
    transfers = [zlib.crc32(data) for data in pictures]
    participant._on_control(
        protocol.encode_message("style_image", id=prompt_id, transfers=transfers)
    )
    for data in pictures:
        for chunk in split_chunks(data):
            participant._on_control(chunk)


async def test_style_pictures_adapt_in_the_background_and_the_style_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    keyframes = KeyframeDecodes(threads=1, queue=0, max_side=64)
    adaptation = AdaptationConfig(top_k=1, probe_steps=1, steps=2)
    p = Participant(
        "room",
        0,
        ServerSettings(preset="tiny"),
        lambda: Renderer("tiny", checkpoint, adaptation=adaptation),
        keyframes,
    )
    p.channels = {label: RecordingChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    p.worker.start()
    await rendering(p)
    stripes = np.zeros((64, 48, 3), np.uint8)
    stripes[:, ::4] = (20, 120, 240)
    pictures = [encode_style_image(stripes), encode_style_image(stripes[:, ::-1].copy())]
    with caplog.at_level(logging.INFO):
        send_style_pictures(p, 5, pictures)
        await until(lambda: p.worker.active_prompt_id == 5, 50)  # adapting on a loaded CPU
    style = control(p).messages()[-1]
    assert style == {"type": "style", "id": 5, "name": picture_style_name(pictures)}
    assert "picture 2: no face found; using its centre" in caplog.text
    assert not p.refused
    await p.close()
    keyframes.close()


@pytest.mark.parametrize(
    ("pictures", "said"),
    [
        (
            [b"<html>not a picture</html>"],
            "style picture 3 refused: style picture 1: not a readable picture",
        ),
        (
            [encode_style_image(np.zeros((300, 300, 3), np.uint8))[:100]],
            "style picture 3 refused: style picture 1: corrupt picture",
        ),
        (
            [encode_style_image(np.zeros((20, 20, 3), np.uint8)), png_claiming(4000, 4000)],
            "style picture 3 refused: style picture 2: 4000x4000 pixels; style pictures are "
            "limited to 262144 pixels",
        ),
    ],
)
async def test_bad_style_pictures_are_refused_to_their_sender_only(
    participant: Participant, pictures: list[bytes], said: str
) -> None:
    rendered = await rendering(participant)
    other = await anext(participant_of(participant.keyframes))
    send_style_pictures(participant, 3, pictures)
    await until(lambda: participant.refused)
    assert participant.refused == {"style_image": 1}
    error = control(participant).messages()[-1]
    assert error["type"] == "error" and error["message"].startswith(said)
    assert error["fatal"] is False and control(other).sent == []
    participant._on_motion(MotionEncoder(schema=motion_schema()).encode(STILL, 40, 0))
    await until(lambda: rendered)  # the call goes on
    await other.close()


async def test_an_announcement_of_too_many_pictures_is_refused_with_the_limit(
    participant: Participant,
) -> None:
    participant._on_control(json.dumps({"type": "style_image", "id": 1, "transfers": [1] * 5}))
    (error,) = control(participant).messages()
    assert error["message"] == (
        "style picture refused: 'style_image' message names 5 pictures; send 1 to 4"
    )
    assert participant.refused == {"style_image": 1}


async def test_style_pictures_while_the_last_ones_are_read_are_refused(
    participant: Participant, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()

    async def slow(pictures: list[bytes]) -> list[np.ndarray]:
        await release.wait()
        raise ValueError("style picture 1: not a readable picture (test)")

    monkeypatch.setattr(participant.keyframes, "decode_style_images", slow)
    send_style_pictures(participant, 1, [b"first"])
    await asyncio.sleep(0)
    send_style_pictures(participant, 2, [b"second"])
    (busy,) = control(participant).messages()
    assert busy["message"] == "style picture 2 refused: your last ones are still being read"
    release.set()
    await until(lambda: participant.refused["style_image"] == 1)
    assert participant.refused == {"style_image_busy": 1, "style_image": 1}
    # the refused announcement's chunks did not become a key frame
    assert "keyframe" not in participant.refused and not participant.worker.has_reference


async def test_a_client_that_never_connects_frees_its_seat(tmp_path: Path) -> None:
    settings = ServerSettings(preset="tiny", loopback_ice=True, connect_timeout_s=0.3)
    keyframes = KeyframeDecodes(threads=1, queue=0, max_side=settings.max_keyframe_side)
    built: list[Renderer] = []
    p = Participant("room", 0, settings, lambda: built.append(Renderer("tiny")), keyframes)
    closed: list[Participant] = []
    p.on_closed = closed.append
    try:
        offer = RTCSessionDescription(sdp=await make_offer(), type="offer")
        await p.accept(offer)  # answered; the client never connects
        await asyncio.wait_for(p.closed.wait(), 5.0)
        assert closed == [p] and built == [] and p.pc.connectionState == "closed"
    finally:
        await p.close()
        keyframes.close()


async def test_a_connected_client_is_not_closed_by_the_connect_deadline(
    participant: Participant,
) -> None:
    participant.settings.connect_timeout_s = 0.05
    participant._on_connect_timeout()  # the fixture's worker is started: the connection was up
    await asyncio.sleep(0.1)
    assert not participant.closed.is_set()


@pytest.fixture
async def viewer_rendering_locally(tmp_path: Path) -> AsyncIterator[Participant]:
    """Seat 1, which renders seat 0's face itself; its channels keep what is relayed to it."""
    settings = ServerSettings(preset="tiny")
    keyframes = KeyframeDecodes(threads=1, queue=0, max_side=settings.max_keyframe_side)
    p = Participant("room", 1, settings, lambda: None, keyframes, render_locally=True)
    p.channels = {label: RecordingChannel() for label in protocol.CHANNELS}  # type: ignore[misc]
    yield p
    await p.close()
    keyframes.close()


async def test_a_partner_that_renders_locally_gets_checked_motion_key_frame_and_style(
    participant: Participant, viewer_rendering_locally: Participant
) -> None:
    alice, bob = participant, viewer_rendering_locally
    alice.set_partner(bob)
    bob.set_partner(alice)
    rendered = await rendering(alice)
    alice._on_control(protocol.encode_message("prompt", id=0, text="comic"))
    encoder = MotionEncoder(schema=motion_schema(), feedback=True)
    alice._on_motion(encoder.encode(STILL, 1000, 0))
    # before bob's hello nothing goes to him, and the server acknowledges nothing for him
    assert bob.channels[protocol.MOTION].sent == []  # type: ignore[attr-defined]
    assert alice.channels[protocol.MOTION].sent == []  # type: ignore[attr-defined]

    bob._on_control(protocol.encode_hello("tiny", SCHEMA))  # now bob is brought up to date
    assembler = KeyframeAssembler()
    chunks = [c for c in control(bob).sent if isinstance(c, bytes)]
    relayed = [data for c in chunks if (data := assembler.add(c)) is not None]
    assert relayed == [alice._keyframe] and relayed[0] is not None and len(relayed[0]) > 100
    assert {"type": "prompt", "id": 0, "text": "comic"} in control(bob).messages()
    assert control(alice).messages()[-1] == {"type": "intra"}  # bob starts from an intra

    packets = [encoder.encode(STILL, 1040 + 40 * seq, 0) for seq in range(3)]
    for packet in packets:
        alice._on_motion(packet)
    alice._on_motion(b"\xc3garbage that does not decode")  # never reaches bob
    assert bob.channels[protocol.MOTION].sent == packets  # type: ignore[attr-defined]
    assert alice.packets_relayed == 3 and alice.malformed[protocol.MOTION] == 1
    await asyncio.sleep(0.2)
    assert rendered == []  # the server rendered nothing for bob
    assert alice.channels[protocol.MOTION].sent == []  # type: ignore[attr-defined]  # no own acks

    # bob's acknowledgement and intra request go on to alice; his style report too
    bob._on_motion(protocol.encode_ack(2))
    alice._intra_requests = Throttle(0.0)  # the first request was just now
    bob._on_control(protocol.encode_message("intra"))
    bob._on_control(protocol.encode_message("style", id=0, name="comic"))
    assert alice.channels[protocol.MOTION].sent == [protocol.encode_ack(2)]  # type: ignore[attr-defined]
    kinds = [m["type"] for m in control(alice).messages()]
    assert kinds[-2:] == ["intra", "style"]
    bob._on_control(protocol.encode_message("style", id=0, name="x" * 500))  # not a style name
    assert control(alice).messages()[-1]["type"] == "style" and len(control(alice).sent) == (
        len(kinds)
    )
    assert bob.malformed[protocol.CONTROL] == 1


async def test_acknowledgements_and_relay_messages_from_a_server_rendered_client_are_dropped(
    participant: Participant,
) -> None:
    await rendering(participant)
    participant._on_motion(protocol.encode_ack(2))
    participant._on_control(protocol.encode_message("style", id=0, name="comic"))
    assert participant.malformed == {protocol.MOTION: 1, protocol.CONTROL: 1}


async def test_a_bundle_is_decoded_item_by_item_and_acknowledged_once(
    participant: Participant,
) -> None:
    rendered = await rendering(participant)
    encoder = MotionEncoder(schema=motion_schema())
    packets = [encoder.encode(STILL, 1000 + 40 * seq, 0) for seq in range(4)]
    (first, second) = protocol.bundle(packets[:2]), protocol.bundle(packets[2:])
    participant._on_motion(first[0])
    participant._on_motion(second[0])
    assert participant.receiver.decoder.stats.decoded == 4
    acks = participant.channels[protocol.MOTION].sent  # type: ignore[attr-defined]
    assert acks == [protocol.encode_ack(1), protocol.encode_ack(3)]  # the newest of each
    await until(lambda: rendered and rendered[-1].seq == 3)
    participant._on_motion(b"\xb0\x09\xc3")  # a bundle cut short: counted, nothing else
    assert participant.malformed[protocol.MOTION] == 1 and len(acks) == 2
