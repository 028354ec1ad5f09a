"""Hostile input against the server and the codec, in this process only (nothing leaves it).

Four attacks, each bounded by its count and by --seconds (whichever comes first):

- signalling: mutated POST /rooms/{id}/offer bodies (JSON: nesting, huge integers, NaN, wrong
  types, cut and padded bodies; SDP: lines dropped, repeated, cut or garbled) against the real
  app (ASGI, server exceptions become HTTP 500 instead of propagating). Counts HTTP 500s and
  stranded seats: rooms whose refused join still holds a reservation or a participant.
- packets: motion packets with bytes flipped, cut or replaced (they carry no CRC: DTLS and SCTP
  guard them on the live path), through the real MotionDecoder. Counts exceptions other than
  BitstreamError (a range-coder panic is a BaseException, so those are counted too).
- ccv: .ccv containers with their header replaced by crafted JSON (nesting, huge integers,
  unknown or path-like presets, wrong types), bytes flipped (header CRC recomputed), or one
  packet mutated (its record CRC recomputed), parsed and their packets decoded. Counts
  exceptions other than BitstreamError.
- churn: dead-end joins (a valid offer, a client that never connects) and room creations, with
  the process's RSS before and after, and the rooms left once their tokens have expired.

The issue's targets: 0 HTTP 500 in >= 1,000 signalling requests, 0 stranded seats, 0 foreign
exceptions in >= 100,000 packets and >= 2,000 .ccv files, RSS within +200 MB after 1,000
dead-end joins and 20,000 rooms, every room gone after expiry. The defaults are those counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import Table, add_bench_parser, publish
from codec import BitstreamError, MotionDecoder, MotionEncoder, motion_schema
from codec.container import MAGIC as CCV_MAGIC
from codec.container import VERSION as CCV_VERSION
from codec.container import CcvFile, from_bytes, to_bytes

DEFAULTS = {"requests": 1000, "packets": 100_000, "ccv": 2000, "joins": 1000, "rooms": 20_000}
TOKEN_TTL_S = 2.0  # rooms of the churn attack expire this soon after creation


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_bench_parser(
        subparsers, "attack", "hostile signalling, packets, .ccv files and churn", __doc__
    )
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name}", type=int, default=default, help=f"(default {default})")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="time limit of each attack (default 60)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the mutations")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = attack(
        {name: getattr(args, name) for name in DEFAULTS}, seconds=args.seconds, seed=args.seed
    )
    table = Table(
        "figures", "hostile input: what got through", ["attack", "count", "measure", "value"]
    )
    for row in results:
        table.add(**row)
    publish(args.out, "attack", [table], args)
    return 0


def attack(counts: dict[str, int], seconds: float, seed: int) -> list[dict[str, Any]]:
    """One row per figure: attack, how many inputs it sent, what was measured, the value."""
    rng = random.Random(seed)
    rows = [
        *attack_packets(counts["packets"], seconds, rng),
        *attack_ccv(counts["ccv"], seconds, rng),
    ]
    rows += asyncio.run(_attack_server(counts, seconds, rng))
    return rows


# -- packets and files -------------------------------------------------------------------------


def _foreign(seen: Counter[str], call: Callable[..., Any], *args: Any) -> None:
    """Run ``call(*args)``; count what it raises, BitstreamError under its own name."""
    try:
        call(*args)
    except BitstreamError:
        seen["BitstreamError"] += 1
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a pyo3 panic is a BaseException: exactly what is counted
        seen[type(exc).__name__] += 1


def _motion(frames: int, rng: random.Random) -> np.ndarray:
    """frames x 60 features: keypoints drifting in [-0.9, 0.9], Jacobians near identity."""
    generator = np.random.default_rng(rng.randrange(1 << 30))
    keypoints = np.clip(np.cumsum(generator.normal(0, 0.01, (frames, 20)), 0), -0.9, 0.9)
    jacobians = np.tile([1.0, 0.0, 0.0, 1.0], 10) + generator.normal(0, 0.05, (frames, 40))
    return np.concatenate([keypoints, jacobians], axis=1).astype(np.float32)


def _stream(rng: random.Random, frames: int = 50) -> list[bytes]:
    encoder = MotionEncoder(motion_schema(), intra_period=10, target_kbps=rng.choice([None, 2.0]))
    return [
        encoder.encode(f, i * 40, prompt_id=i % 128) for i, f in enumerate(_motion(frames, rng))
    ]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    raw = bytearray(data)
    how = rng.randrange(4)
    if how == 0:
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
    elif how == 1:
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    elif how == 2:
        del raw[rng.randrange(len(raw)) :]
    else:
        start = rng.randrange(len(raw))
        raw[start:] = rng.randbytes(rng.randint(0, 64))
    return bytes(raw)


def attack_packets(count: int, seconds: float, rng: random.Random) -> list[dict[str, Any]]:
    streams = [_stream(rng) for _ in range(4)]
    seen: Counter[str] = Counter()
    deadline, sent = time.monotonic() + seconds, 0
    decoder = MotionDecoder(motion_schema())
    while sent < count and time.monotonic() < deadline:
        stream = rng.choice(streams)
        for packet in stream[: rng.randint(1, 12)]:  # some good packets: a decoder with state
            _foreign(seen, decoder.decode, packet)
        _foreign(seen, decoder.decode, _mutate(rng.choice(stream), rng))
        sent += 1
    foreign = sum(n for name, n in seen.items() if name != "BitstreamError")
    return [_row("motion packets (mutated)", sent, "exceptions not BitstreamError", foreign)]


def _crafted_header(rng: random.Random) -> Any:
    header: dict[str, Any] = {
        "schema": motion_schema().to_dict(),
        "fps": 25.0,
        "prompt": None,
        "preset": None,
        "packets": 0,
    }
    field = rng.choice([*header, "schema.groups", "extra"])
    value = rng.choice(
        [
            "[" * rng.randint(5, 5000) + "]" * 5,
            "9" * rng.randint(11, 6000),
            "NaN",
            "-1e999",
            json.dumps(rng.choice(["../../x", "/etc/passwd", "lite-128", "tiny", "x" * 2000])),
            json.dumps(rng.choice([[], {}, True, -1, 0, 1.5, "s", None, 2**40])),
            '{"size": 99999999, "step": 0, "low": 5, "high": -5}',
        ]
    )
    if field == "schema.groups":
        return json.dumps(header)[:-1].replace('"groups": [', f'"groups": [{value}, ', 1) + "}"
    text = json.dumps({k: v for k, v in header.items() if k != field})
    return text[:-1] + f', "{field}": {value}}}'


def _with_header(text: str, keyframe: bytes = b"") -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    head = CCV_MAGIC + bytes([CCV_VERSION]) + struct.pack(">I", len(raw)) + raw
    head += struct.pack(">I", len(keyframe))
    head += keyframe + b"\x00"  # no style pictures
    return head + struct.pack(">I", zlib.crc32(head))


def _parse_and_decode(data: bytes) -> None:
    ccv = from_bytes(data)
    decoder = MotionDecoder(ccv.schema)
    for packet in ccv.packets:
        decoder.decode(packet)


def attack_ccv(count: int, seconds: float, rng: random.Random) -> list[dict[str, Any]]:
    ccv = CcvFile(motion_schema(), 25.0, b"CK", _stream(rng, 20), "sketch", "tiny")
    valid = to_bytes(ccv)
    header_end = 9 + struct.unpack(">I", valid[5:9])[0] + 4 + 2  # up to the header CRC
    seen: Counter[str] = Counter()
    deadline, sent = time.monotonic() + seconds, 0
    while sent < count and time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.4:
            data = _with_header(_crafted_header(rng))
        elif roll < 0.7:  # one packet mutated, its record's CRC recomputed so it is decoded
            packets = list(ccv.packets)
            index = rng.randrange(len(packets))
            packets[index] = _mutate(packets[index], rng) or b"\x00"
            data = to_bytes(CcvFile(**{**vars(ccv), "packets": packets}))
        else:  # a flipped byte anywhere, the header CRC recomputed so the header is read
            data = _mutate(valid, rng)
            if len(data) >= header_end + 4:
                head = data[:header_end]
                data = head + struct.pack(">I", zlib.crc32(head)) + data[header_end + 4 :]
        _foreign(seen, _parse_and_decode, data)
        sent += 1
    foreign = sum(n for name, n in seen.items() if name != "BitstreamError")
    return [_row(".ccv files (crafted)", sent, "exceptions not BitstreamError", foreign)]


# -- server ------------------------------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmRSS in /proc/self/status")


def _mutated_body(token: str, offer: str, rng: random.Random) -> bytes:
    good = {"token": token, "sdp": offer, "type": "offer"}
    how = rng.randrange(8)
    if how == 0:
        return ('{"token": ' + "[" * rng.randint(9, 5000) + "]" * 3 + "}").encode()
    if how == 1:
        return ('{"token": "' + token + '", "sdp": ' + "9" * rng.randint(21, 6000) + "}").encode()
    if how == 2:
        return json.dumps({**good, rng.choice(list(good)): rng.choice([[], {}, 1, None])}).encode()
    if how == 3:
        return json.dumps(good).encode()[: rng.randrange(200)]
    if how == 4:
        return json.dumps(good).encode() + b" " * (64 * 1024)
    lines = offer.split("\r\n")
    at = rng.randrange(len(lines))
    if how == 5:
        del lines[at]
    elif how == 6:
        lines[at] = lines[at][: rng.randrange(len(lines[at]) + 1)]
    else:
        line = list(lines[at])
        for _ in range(rng.randint(1, 3)):
            if line:
                line[rng.randrange(len(line))] = chr(
                    rng.choice([0, 32, 58, 61, 47, rng.randrange(128)])
                )
        lines[at] = "".join(line)
    return json.dumps({**good, "sdp": "\r\n".join(lines)}).encode()


async def _attack_server(
    counts: dict[str, int], seconds: float, rng: random.Random
) -> list[dict[str, Any]]:
    import httpx

    from server.app import create_app
    from server.settings import ServerSettings

    settings = ServerSettings(
        preset="tiny",
        loopback_ice=True,
        token_ttl_s=TOKEN_TTL_S,
        max_rooms=counts["rooms"] + counts["requests"] + counts["joins"] + 10,
        rooms_per_client_per_minute=10**9,
    )
    app = create_app(settings)
    registry = app.state.registry
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    offer = await _client_offer()
    rows = []
    async with httpx.AsyncClient(transport=transport, base_url="http://attack") as http:
        statuses: Counter[int] = Counter()
        stranded, deadline, sent = 0, time.monotonic() + seconds, 0
        while sent < counts["requests"] and time.monotonic() < deadline:
            room = (await http.post("/rooms")).json()
            body = _mutated_body(room["tokens"][0], offer, rng)
            response = await http.post(f"/rooms/{room['room']}/offer", content=body)
            statuses[response.status_code] += 1
            held = registry.rooms.get(room["room"])
            if response.status_code != 200 and held is not None:
                stranded += bool(held.joining or held.participants)
            sent += 1
        rows.append(_row("signalling requests (mutated)", sent, "HTTP 500", statuses[500]))
        rows.append(_row("signalling requests (mutated)", sent, "stranded seats", stranded))
        rows.append(_row("signalling requests (mutated)", sent, "statuses", dict(statuses)))
        await registry.close_all()

        start = rss_mb()
        deadline, joined = time.monotonic() + seconds, 0
        while joined < counts["joins"] and time.monotonic() < deadline:
            room = (await http.post("/rooms")).json()
            join = {"token": room["tokens"][0], "sdp": offer, "type": "offer"}
            answer = await http.post(f"/rooms/{room['room']}/offer", json=join)
            joined += answer.status_code == 200
        rows.append(_row("dead-end joins", joined, "RSS MB start -> end", _rss_change(start)))
        await registry.close_all()

        start = rss_mb()
        deadline, created = time.monotonic() + seconds, 0
        while created < counts["rooms"] and time.monotonic() < deadline:
            created += (await http.post("/rooms")).status_code == 200
        rows.append(_row("room creations", created, "RSS MB start -> end", _rss_change(start)))
        await asyncio.sleep(TOKEN_TTL_S + 0.1)
        registry.expire(time.time())
        rows.append(_row("room creations", created, "rooms left after expiry", len(registry.rooms)))
        await registry.close_all()
    return rows


async def _client_offer() -> str:
    """The SDP offer a call client sends: data channels and a receive-only video."""
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.createDataChannel("control")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


def _rss_change(start: float) -> str:
    return f"{start:.0f} -> {rss_mb():.0f}"


def _row(attack: str, count: int, measure: str, value: Any) -> dict[str, Any]:
    return {"attack": attack, "count": count, "measure": measure, "value": value}
