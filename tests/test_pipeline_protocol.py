from __future__ import annotations

import json

import pytest

from pipeline.protocol import (
    CAPABILITIES,
    MAX_JSON_DEPTH,
    MAX_PROMPT_CHARS,
    MAX_TEXT_MESSAGE_CHARS,
    PTS_PER_MS,
    VIDEO_CLOCK_RATE,
    ProtocolError,
    bundle,
    check_prompt,
    encode_ack,
    encode_hello,
    encode_message,
    frame_entry,
    frame_key,
    frame_metas,
    hello_mismatch,
    is_repeat,
    load_json,
    parse_ack,
    parse_message,
    redact_paths,
    unbundle,
)


def test_encoded_messages_parse_back() -> None:
    text = encode_message("prompt", id=3, text="comic")
    assert parse_message(text) == {"type": "prompt", "id": 3, "text": "comic"}
    entries = [frame_entry(90, 1, 5, 0, 1.504, True), frame_entry(180, 2, 45, 0, 2.0, False)]
    frames = parse_message(encode_message("frames", frames=entries))
    assert frames == {"type": "frames", "frames": [[90, 1, 5, 0, 1.5, 1], [180, 2, 45, 0, 2.0, 0]]}
    assert frame_metas(frames)[1] == {
        "pts": 180,
        "seq": 2,
        "capture_ms": 45,
        "prompt_id": 0,
        "render_ms": 2.0,
        "concealed": 0,
    }
    pictures = encode_message("style_image", id=4, transfers=[0, 2**32 - 1])
    assert parse_message(pictures) == {"type": "style_image", "id": 4, "transfers": [0, 2**32 - 1]}
    audio = encode_message("audio", pts=960, capture_ms=1234.5)
    assert parse_message(audio) == {"type": "audio", "pts": 960, "capture_ms": 1234.5}


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
        (
            json.dumps({"type": "hello", "preset": "tiny", "capabilities": []}),
            "'hello' message needs 'schema' of type str",
        ),
        (
            json.dumps({"type": "hello", "preset": "tiny", "schema": "ab", "capabilities": [{}]}),
            "'hello' message needs 'capabilities' of strings",
        ),
        (json.dumps({"type": "style", "id": 1}), "'style' message needs 'name' of type str"),
        (
            json.dumps({"type": "style_image", "id": 1, "transfers": []}),
            "'style_image' message names 0 pictures; send 1 to 4",
        ),
        (
            json.dumps({"type": "style_image", "id": 1, "transfers": [1] * 5}),
            "'style_image' message names 5 pictures; send 1 to 4",
        ),
        *(
            (
                json.dumps({"type": "style_image", "id": 1, "transfers": [bad]}),
                r"needs 'transfers' of CRC32 values \(0 .. 2\*\*32 - 1\)",
            )
            for bad in (-1, 2**32, 1.5, True, "7")
        ),
        (
            json.dumps({"type": "style_image", "id": 1, "transfers": [7, 7]}),
            "'style_image' message names a picture twice",
        ),
        (json.dumps({"type": "audio", "pts": -960, "capture_ms": 0}), "needs 'pts' >= 0"),
        (json.dumps({"type": "audio", "pts": 0}), "'audio' message needs 'capture_ms'"),
        ('{"type": []}', r"unknown message type \[\]"),
        ('{"type": {}}', r"unknown message type \{\}"),
        ("[" * 4000, f"not JSON: nested deeper than {MAX_JSON_DEPTH} levels"),
        ('{"type": "ping", "t": ' + "[" * 9 + "]" * 9 + "}", "nested deeper than 8 levels"),
        ('{"type": "ping", "t": ' + "9" * 21 + "}", "not JSON: integer of 21 digits"),
        ('{"type": "ping", "t": 1e999}', "not JSON: 1e999 is out of range"),
        ('{"type": "ping", "t": NaN}', "not JSON: NaN is not a number"),
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


def test_load_json_reads_bounded_input_and_refuses_the_rest() -> None:
    body = load_json(b'{"sdp": "v=0", "n": [1, -2.5, null]}')
    assert body == {"sdp": "v=0", "n": [1, -2.5, None]}
    deepest_allowed = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert load_json(deepest_allowed) == json.loads(deepest_allowed)
    with pytest.raises(ProtocolError, match="not JSON: not UTF-8"):
        load_json(b'"\xff"')
    with pytest.raises(ProtocolError, match="not JSON: integer of 5000 digits"):
        load_json("9" * 5000)  # past Python's own 4,300-digit limit
    with pytest.raises(ProtocolError, match="not JSON: nested deeper than 8 levels"):
        load_json("[" * 100_000)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("checkpoint /work/main/models/weights/lite-128.pt: bad", "checkpoint lite-128.pt: bad"),
        ("cache '/var/lib/x/styles/a b' full", "cache 'a b' full"),
        ("C:\\Users\\me\\w.pt missing", "w.pt missing"),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96", "m=video 9 UDP/TLS/RTP/SAVPF 96"),
        ("POST /rooms first", "POST /rooms first"),
    ],
)
def test_paths_are_cut_to_their_last_part(text: str, said: str) -> None:
    assert redact_paths(text) == said


def test_acknowledgements_round_trip_modulo_the_frame_number_width() -> None:
    assert encode_ack(7) == b"\xa1\x07"
    assert parse_ack(encode_ack(3 * 256 + 200)) == 200


@pytest.mark.parametrize(
    "data",
    [b"", b"\xa1", b"\xa1\x00\x07", b"\xc3\x07", "\xa1\x07"],
)
def test_anything_else_is_not_an_acknowledgement(data: str | bytes) -> None:
    with pytest.raises(ProtocolError, match="not an acknowledgement"):
        parse_ack(data)


def test_hellos_that_agree_are_no_mismatch() -> None:
    hello = parse_message(encode_hello("tiny", "0123abcd", seat=1))
    assert hello == {
        "type": "hello",
        "preset": "tiny",
        "schema": "0123abcd",
        "capabilities": list(CAPABILITIES),
        "seat": 1,
    }
    assert hello_mismatch(hello, parse_message(encode_hello("tiny", "0123abcd"))) is None


@pytest.mark.parametrize(
    ("client", "what", "reason"),
    [
        (
            {"preset": "lite-128"},
            "preset",
            "the server renders preset 'tiny', the client extracts motion for 'lite-128': "
            "start the client with --preset tiny",
        ),
        (
            {"schema": "ffff0000"},
            "schema",
            "the client's motion schema 'ffff0000' is not the server's '0123abcd': "
            "use the same cartooncodec version on both",
        ),
        (
            {"capabilities": [*CAPABILITIES[1:], "motion-v9"]},
            "capabilities",
            f"capabilities differ (the server's only: {CAPABILITIES[0]}; the client's only: "
            "motion-v9): use the same cartooncodec version on both",
        ),
        (
            {"capabilities": list(CAPABILITIES[:-1])},
            "capabilities",
            f"capabilities differ (the server's only: {CAPABILITIES[-1]}; the client's only: "
            "none): use the same cartooncodec version on both",
        ),
    ],
)
def test_hello_mismatches_say_what_differs_and_how_to_fix_it(
    client: dict, what: str, reason: str
) -> None:
    server = parse_message(encode_hello("tiny", "0123abcd"))
    assert hello_mismatch(server, {**server, **client}) == (what, reason)


def test_a_refused_message_names_its_type_when_it_is_a_known_one() -> None:
    with pytest.raises(ProtocolError) as hello:
        parse_message(json.dumps({"type": "hello", "preset": "tiny", "capabilities": []}))
    assert hello.value.kind == "hello"
    with pytest.raises(ProtocolError) as unknown:
        parse_message(json.dumps({"type": "launch"}))
    assert unknown.value.kind is None


def test_frame_key_absorbs_one_tick_of_rounding() -> None:
    assert frame_key(7 * PTS_PER_MS - 1) == frame_key(7 * PTS_PER_MS) == 7


def test_repeats_are_the_odd_milliseconds() -> None:
    assert [is_repeat(ms * PTS_PER_MS + tick) for ms in (0, 1, 40, 41) for tick in (-1, 0, 1)] == [
        *(False,) * 3,
        *(True,) * 3,
        *(False,) * 3,
        *(True,) * 3,
    ]


def test_video_clock_is_aiortcs() -> None:
    from aiortc.mediastreams import VIDEO_CLOCK_RATE as AIORTC_VIDEO_CLOCK_RATE

    assert VIDEO_CLOCK_RATE == AIORTC_VIDEO_CLOCK_RATE == 90_000


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "'frames' message carries 0 frames; 1 to 16"),
        ([[0, 1, 2, 3, 4.0, 0]] * 17, "'frames' message carries 17 frames; 1 to 16"),
        ([[0, 1, 2, 3, 4.0]], "'frames' entries are [pts, seq, capture_ms, prompt_id,"),
        ([[0.5, 1, 2, 3, 4.0, 0]], "(numbers; integers but render_ms), got [0.5"),
        ([[0, 1, 2, 3, 4.0, True]], "got [0, 1, 2, 3, 4.0, True]"),
        (["frame"], "got 'frame'"),
    ],
)
def test_malformed_frame_batches_are_refused(frames: list, reason: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_message(json.dumps({"type": "frames", "frames": frames}))
    assert reason in str(refused.value) and refused.value.kind == "frames"


def test_bundles_have_a_fixed_layout() -> None:
    packet, ack = bytes.fromhex("c30102030405aa"), encode_ack(9)
    assert bundle([packet]) == [packet]  # one item goes as it is
    (message,) = bundle([packet, packet, ack])
    assert message.hex() == "b0" + "07c30102030405aa" * 2 + "02a109"  # golden
    assert unbundle(message) == [packet, packet, ack]
    assert unbundle(packet) == [packet] and unbundle(ack) == [ack]


def test_bundles_split_at_the_item_limits() -> None:
    small, large = b"\xc3" + bytes(9), b"\xc3" + bytes(300)
    messages = bundle([small] * 5 + [large, small])
    assert [len(m) for m in messages] == [1 + 4 * 11, 10, 301, 10]
    assert [item for m in messages for item in unbundle(m)] == [small] * 5 + [large, small]
    assert bundle([]) == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("text", "expected a binary motion-channel message, got text"),
        (b"\xb0", "empty bundle"),
        (b"\xb0\x05\xc3\x00", "bundle item 1 is empty or cut short"),
        (b"\xb0\x02\xa1\x01\x00", "bundle item 2 is empty or cut short"),
        (b"\xb0\x03\xb0\x01\xc3", "a bundle inside a bundle"),
        (b"\xb0" + b"\x01\xc3" * 5, "bundle of more than 4 items"),
    ],
)
def test_malformed_bundles_are_refused(data: str | bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        unbundle(data)
    assert str(refused.value) == reason
