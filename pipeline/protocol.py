"""Data-channel protocol shared by the server and the client.

Three channels per peer connection, all opened by the client:

- ``motion`` (unordered, no retransmits): binary motion packets from ``codec.MotionEncoder``
  client → server; acknowledgements server → client (``encode_ack``: 2 bytes, the number of
  the newest decoded frame mod 2**8), so the sender predicts from a frame the receiver holds
  and a lost packet costs that frame only. A lost acknowledgement is superseded by the next.
- ``control`` (reliable, ordered): JSON text messages, and binary chunks
  (``codec.keyframe.split_chunks``) client → server: the key frame's, and style pictures'.
- ``stats``: JSON text messages: clock pings, per-frame metadata of the video track, reports,
  and ``audio {pts, capture_ms}``: the audio track's sample ``pts`` (1/48000 s) was captured at
  ``capture_ms`` on the call clock (client → server: its track's pts 0; server → client: an
  anchor of the forwarded track, sent again whenever the relation changes).

Every JSON message is an object with a ``type``; ``parse_message`` checks the fields each type
needs and raises ProtocolError (a ValueError) with the reason otherwise. ``load_json`` is the one
JSON reader for anything from outside (data channels, signalling bodies): it bounds nesting and
integer size, so hostile input is refused with a reason instead of raising deep in ``json``.

Negotiation: each side sends ``hello`` (preset, motion schema fingerprint, capabilities) on
``control``; ``hello_mismatch`` is the one comparison both sides make. The server renders a
client's motion only after a hello that matches its own; it refuses one that differs or is
malformed (an ``error`` with ``fatal`` true), and the client ends the call. ``style`` says
which style a prompt became active as (``name``: the built-in style it was mapped to, else the
normalised prompt).

Style pictures (``style_image``, any time in a call): the client re-encodes up to
``MAX_SENT_STYLE_IMAGES`` pictures (``models.style_images.encode_style_image``; that module holds
every limit on them), sends ``{"type": "style_image", "id": prompt id, "transfers": [the CRC32
of each picture's bytes]}``, then each picture as chunks on ``control``; a chunked transfer
whose CRC32 an announcement named is that picture, any other is a key frame. The server
adapts a style to the pictures in the background, as for a new prompt, and answers ``style``
(``name``: ``picture-`` and a hash of the pictures) or an ``error`` saying why not.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

from codec.boundedjson import JsonRefused, load_bounded_json
from codec.packet import SEQ_MODULUS
from models.style_images import MAX_SENT_STYLE_IMAGES
from models.style_names import MAX_PROMPT_CHARS  # the renderer's limit, refused here early

MOTION = "motion"
CONTROL = "control"
STATS = "stats"
CHANNELS = (MOTION, CONTROL, STATS)

VIDEO_CLOCK_RATE = 90_000  # the video track's clock (RTP video, aiortc's VIDEO_CLOCK_RATE)
# pts are whole milliseconds: the receiver's pts can be one tick off after the 90 kHz round
# trip through the encoder, so viewers match frames to metadata by the nearest millisecond.
PTS_PER_MS = VIDEO_CLOCK_RATE // 1000

MAX_KEYFRAME_BYTES = 256 * 1024
MAX_TEXT_MESSAGE_CHARS = 4096
MAX_JSON_DEPTH = 8  # every message and signalling body is at most 2 levels deep
MAX_JSON_INT_DIGITS = 20  # int64 range; Python refuses over 4,300 digits with a bare ValueError
CAPABILITIES = (
    "motion-v2",
    "ack-v1",
    "keyframe-v1",
    "prompt-v1",
    "frame-meta-v2",
    "style-image-v1",
    "relay-v1",
)
# A receiver whose decoder lost its reference asks the sender for an intra frame this often
INTRA_REQUEST_INTERVAL_S = 0.25
# How a participant sees the other, chosen at join (the offer body's "render"): rendered by the
# server into a video track, or relayed as motion, key frame and style and rendered locally.
RENDER_MODES = ("server", "local")
# The server sends the metadata of the video frames it sent in batches (``frames``), at most
# MAX_FRAMES_PER_MESSAGE a message, so the viewer's SCTP acknowledges one message per batch
FRAME_FIELDS = ("pts", "seq", "capture_ms", "prompt_id", "render_ms", "concealed")
MAX_FRAMES_PER_MESSAGE = 16
ACK = struct.Struct(">BB")  # marker, frame number mod 2**8 (codec.packet.SEQ_MODULUS)
ACK_MARKER = 0xA1  # a motion packet's first byte is 0xC_
# A motion-channel message is one item (a motion packet or an acknowledgement) or a bundle of
# 2..MAX_BUNDLE_ITEMS items: BUNDLE_MARKER, then each item as its length (1 byte) and bytes.
# Each SCTP message costs ~80 bytes of SCTP/DTLS framing and a ~65-byte SACK back, so two
# frames a message (`call --bundle 2`), or a frame with the acknowledgement of the other's
# frame, cost one message instead of two.
BUNDLE_MARKER = 0xB0
MAX_BUNDLE_ITEMS = 4
MAX_BUNDLE_ITEM_BYTES = 255

# an absolute path of two or more parts ("UDP/TLS/RTP" and "POST /rooms" are not)
_PATH = re.compile(r"""(?<![\w.:/\\-])(?:[A-Za-z]:)?[/\\](?:[^\s'"/\\]+[/\\])+([^\s'"/\\]*)""")

# type -> {field: accepted python types}
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    # control
    "hello": {"preset": (str,), "schema": (str,), "capabilities": (list,)},
    "prompt": {"id": (int,), "text": (str,)},
    "style_image": {"id": (int,), "transfers": (list,)},
    "intra": {},
    "bye": {},
    "error": {"message": (str,)},
    "style": {"id": (int,), "name": (str,)},
    # stats
    "ping": {"t": (int, float)},
    "pong": {"t": (int, float), "server_ms": (int, float)},
    # metadata of video frames sent, oldest first: each a list of FRAME_FIELDS
    "frames": {"frames": (list,)},
    "report": {"fps_shown": (int, float), "latency_p50_ms": (int, float, type(None))},
    "audio": {"pts": (int,), "capture_ms": (int, float)},
}


class ProtocolError(ValueError):
    """A data-channel message that does not follow the protocol; ``kind``: its type, when it
    named a known one (its fields are what is wrong)."""

    def __init__(self, reason: str, kind: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind


def encode_message(kind: str, **fields: Any) -> str:
    if kind not in _FIELDS:
        raise ValueError(f"unknown message type {kind!r}")
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def parse_message(text: str | bytes) -> dict[str, Any]:
    """Parse one JSON message and check its fields: ``{"type": ..., ...}``."""
    if isinstance(text, bytes):
        raise ProtocolError("expected a text message, got binary")
    if len(text) > MAX_TEXT_MESSAGE_CHARS:
        raise ProtocolError(f"message of {len(text)} chars exceeds {MAX_TEXT_MESSAGE_CHARS}")
    message = load_json(text)
    if not isinstance(message, dict):
        raise ProtocolError("message must be a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ProtocolError(f"unknown message type {excerpt(kind)}")
    for field, types in _FIELDS[kind].items():
        value = message.get(field)
        if not isinstance(value, types) or isinstance(value, bool):
            raise ProtocolError(
                f"{kind!r} message needs {field!r} of type {types[0].__name__}", kind
            )
    if kind == "hello" and not all(isinstance(c, str) for c in message["capabilities"]):
        raise ProtocolError("'hello' message needs 'capabilities' of strings", kind)
    if kind == "style_image":
        _check_transfers(message["transfers"])
    if kind == "frames":
        _check_frames(message["frames"])
    if kind == "audio" and message["pts"] < 0:
        raise ProtocolError("'audio' message needs 'pts' >= 0", kind)
    return message


def frame_entry(
    pts: int, seq: int, capture_ms: int, prompt_id: int, render_ms: float, concealed: bool
) -> list[int | float]:
    """One video frame's entry in a ``frames`` message (FRAME_FIELDS, in order)."""
    return [pts, seq, capture_ms, prompt_id, round(render_ms, 2), int(concealed)]


def frame_metas(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a parsed ``frames`` message as dicts keyed by FRAME_FIELDS."""
    return [dict(zip(FRAME_FIELDS, entry, strict=True)) for entry in message["frames"]]


def _check_frames(frames: list[Any]) -> None:
    if not 1 <= len(frames) <= MAX_FRAMES_PER_MESSAGE:
        raise ProtocolError(
            f"'frames' message carries {len(frames)} frames; 1 to {MAX_FRAMES_PER_MESSAGE}",
            "frames",
        )
    for entry in frames:
        if not (
            isinstance(entry, list)
            and len(entry) == len(FRAME_FIELDS)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in entry)
            and all(isinstance(v, int) for i, v in enumerate(entry) if i != 4)
        ):
            raise ProtocolError(
                f"'frames' entries are [{', '.join(FRAME_FIELDS)}] (numbers; integers but "
                f"render_ms), got {excerpt(entry)}",
                "frames",
            )


def _check_transfers(transfers: list[Any]) -> None:
    if not 1 <= len(transfers) <= MAX_SENT_STYLE_IMAGES:
        raise ProtocolError(
            f"'style_image' message names {len(transfers)} pictures; send 1 to "
            f"{MAX_SENT_STYLE_IMAGES}",
            "style_image",
        )
    if not all(type(t) is int and 0 <= t < 2**32 for t in transfers):
        raise ProtocolError(
            "'style_image' message needs 'transfers' of CRC32 values (0 .. 2**32 - 1)",
            "style_image",
        )
    if len(set(transfers)) < len(transfers):
        raise ProtocolError("'style_image' message names a picture twice", "style_image")


def encode_hello(preset: str, schema: str, **extra: Any) -> str:
    """This side's hello: ``schema`` is the motion ``FeatureSchema.fingerprint()``."""
    return encode_message(
        "hello", preset=preset, schema=schema, capabilities=list(CAPABILITIES), **extra
    )


def hello_mismatch(server: dict[str, Any], client: dict[str, Any]) -> tuple[str, str] | None:
    """What makes a call between these two (parsed) hellos impossible, as (what, reason) with
    ``what`` one of preset | schema | capabilities; None when they agree."""
    if server["preset"] != client["preset"]:
        return "preset", (
            f"the server renders preset {server['preset']!r}, the client extracts motion for "
            f"{client['preset']!r}: start the client with --preset {server['preset']}"
        )
    if server["schema"] != client["schema"]:
        return "schema", (
            f"the client's motion schema {excerpt(client['schema'])} is not the server's "
            f"{server['schema']!r}: use the same cartooncodec version on both"
        )
    server_only = sorted(set(server["capabilities"]) - set(client["capabilities"]))
    client_only = sorted(set(client["capabilities"]) - set(server["capabilities"]))
    if server_only or client_only:
        return "capabilities", (
            f"capabilities differ (the server's only: {', '.join(server_only) or 'none'}; the "
            f"client's only: {', '.join(client_only) or 'none'}): use the same "
            "cartooncodec version on both"
        )
    return None


def encode_ack(seq: int) -> bytes:
    """Acknowledge decoded frame ``seq`` (reduced mod SEQ_MODULUS, as motion packets carry it)."""
    return ACK.pack(ACK_MARKER, seq % SEQ_MODULUS)


def parse_ack(data: str | bytes) -> int:
    """The frame number (0..255) an acknowledgement names; ProtocolError if it is not one."""
    if not isinstance(data, bytes) or len(data) != ACK.size or data[0] != ACK_MARKER:
        raise ProtocolError(f"not an acknowledgement: {excerpt(data)}")
    return int(ACK.unpack(data)[1])


def bundle(items: list[bytes]) -> list[bytes]:
    """Motion-channel messages for ``items`` (packets and acknowledgements, in order): as few
    as MAX_BUNDLE_ITEMS and MAX_BUNDLE_ITEM_BYTES allow; an item too long to bundle goes alone.
    """
    messages: list[bytes] = []
    group: list[bytes] = []
    for item in [*items, b""]:  # b"": the end, which closes the last group
        if group and (
            not item or len(item) > MAX_BUNDLE_ITEM_BYTES or len(group) == MAX_BUNDLE_ITEMS
        ):
            messages.append(group[0] if len(group) == 1 else _bundled(group))
            group = []
        if len(item) > MAX_BUNDLE_ITEM_BYTES:
            messages.append(item)
        elif item:
            group.append(item)
    return messages


def _bundled(items: list[bytes]) -> bytes:
    return bytes([BUNDLE_MARKER]) + b"".join(bytes([len(item)]) + item for item in items)


def unbundle(data: str | bytes) -> list[bytes]:
    """The items of one motion-channel message: a bundle's, else the message itself;
    ProtocolError for text, or a bundle that is empty, truncated, nested or too long."""
    if not isinstance(data, bytes):
        raise ProtocolError("expected a binary motion-channel message, got text")
    if not data or data[0] != BUNDLE_MARKER:
        return [data]
    items: list[bytes] = []
    at = 1
    while at < len(data):
        size = data[at]
        item = data[at + 1 : at + 1 + size]
        if size == 0 or len(item) != size:
            raise ProtocolError(f"bundle item {len(items) + 1} is empty or cut short")
        if item[0] == BUNDLE_MARKER:
            raise ProtocolError("a bundle inside a bundle")
        items.append(item)
        at += 1 + size
        if len(items) > MAX_BUNDLE_ITEMS:
            raise ProtocolError(f"bundle of more than {MAX_BUNDLE_ITEMS} items")
    if not items:
        raise ProtocolError("empty bundle")
    return items


def load_json(text: str | bytes) -> Any:
    """The one JSON reader for anything from outside: ``codec.boundedjson`` within
    MAX_JSON_DEPTH and MAX_JSON_INT_DIGITS; ProtocolError("not JSON: ...") for what it refuses."""
    try:
        return load_bounded_json(text, MAX_JSON_DEPTH, MAX_JSON_INT_DIGITS)
    except JsonRefused as exc:
        raise ProtocolError(str(exc)) from exc


def excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def check_prompt(text: str) -> None:
    """Refuse prompts the renderer will not take; the message is sent back on ``control``."""
    if len(text) > MAX_PROMPT_CHARS:
        raise ProtocolError(f"prompt of {len(text)} characters exceeds {MAX_PROMPT_CHARS}")


def redact_paths(text: str) -> str:
    """``text`` with every absolute file path cut to its last part: what the server says to
    clients (refusals, HTTP errors) must not show its file system."""
    return _PATH.sub(r"\1", text)


def frame_key(pts: int) -> int:
    """The millisecond a video frame's pts stands for: the same on both ends of the call."""
    return round(pts / PTS_PER_MS)


def is_repeat(pts: int) -> bool:
    """Whether a video frame is the server's repeat of the frame before it (odd milliseconds;
    rendered frames have even ones), which only releases that frame at the viewer."""
    return frame_key(pts) % 2 == 1
