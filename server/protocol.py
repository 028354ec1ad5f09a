"""Data-channel protocol shared by the server and the client.

Three channels per peer connection, all opened by the client:

- ``motion`` (unordered, no retransmits): binary motion packets from ``codec.MotionEncoder``.
- ``control`` (reliable, ordered): JSON text messages, and binary key frame chunks
  (``codec.keyframe.split_chunks``) client → server.
- ``stats``: JSON text messages: clock pings, per-frame metadata of the video track, reports.

Every JSON message is an object with a ``type``; ``parse_message`` checks the fields each type
needs and raises ProtocolError (a ValueError) with the reason otherwise. ``load_json`` is the one
JSON reader for anything from outside (data channels, signalling bodies): it bounds nesting and
integer size, so hostile input is refused with a reason instead of raising deep in ``json``.
"""

from __future__ import annotations

import json
import math
from typing import Any

MOTION = "motion"
CONTROL = "control"
STATS = "stats"
CHANNELS = (MOTION, CONTROL, STATS)

MAX_PROMPT_CHARS = 200
MAX_KEYFRAME_BYTES = 256 * 1024
MAX_TEXT_MESSAGE_CHARS = 4096
MAX_JSON_DEPTH = 8  # every message and signalling body is at most 2 levels deep
MAX_JSON_INT_DIGITS = 20  # int64 range; Python refuses over 4,300 digits with a bare ValueError
CAPABILITIES = ("motion-v1", "keyframe-v1", "prompt-v1", "frame-meta-v1")

# type -> {field: accepted python types}
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    # control
    "hello": {"preset": (str,), "capabilities": (list,)},
    "prompt": {"id": (int,), "text": (str,)},
    "intra": {},
    "bye": {},
    "error": {"message": (str,)},
    "style": {"id": (int,)},
    # stats
    "ping": {"t": (int, float)},
    "pong": {"t": (int, float), "server_ms": (int, float)},
    "frame": {
        "pts": (int,),
        "seq": (int,),
        "capture_ms": (int,),
        "prompt_id": (int,),
        "render_ms": (int, float),
    },
    "report": {"fps_shown": (int, float), "latency_p50_ms": (int, float, type(None))},
}


class ProtocolError(ValueError):
    """A data-channel message that does not follow the protocol."""


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
        raise ProtocolError(f"unknown message type {_excerpt(kind)}")
    for field, types in _FIELDS[kind].items():
        value = message.get(field)
        if not isinstance(value, types) or isinstance(value, bool):
            raise ProtocolError(f"{kind!r} message needs {field!r} of type {types[0].__name__}")
    return message


def load_json(text: str | bytes) -> Any:
    """``json.loads`` for input from outside; ProtocolError("not JSON: ...") for anything it
    refuses: bad syntax or encoding, nesting deeper than MAX_JSON_DEPTH, integers longer than
    MAX_JSON_INT_DIGITS digits, NaN or Infinity."""
    try:
        value = json.loads(
            text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except RecursionError as exc:
        raise ProtocolError(f"not JSON: nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not JSON: not UTF-8 ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc.msg}") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise ProtocolError(f"not JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise ProtocolError(f"not JSON: integer of {len(digits)} digits")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError(f"not JSON: {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ProtocolError(f"not JSON: {name} is not a number")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def check_prompt(text: str) -> None:
    """Refuse prompts the renderer will not take; the message is sent back on ``control``."""
    if len(text) > MAX_PROMPT_CHARS:
        raise ProtocolError(f"prompt of {len(text)} characters exceeds {MAX_PROMPT_CHARS}")
