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
- encoder: every rate target from 0.001 to 1,000 kbps (log-spaced) with short and long intra
  periods, encoded and decoded. Counts exceptions (a panic included).
- churn during a call: a real server (`cartooncodec serve`, its own process, on 127.0.0.1) with
  a two-party call (two CallClients in this process, synthetic faces); the shown frame rate of
  each viewer is sampled every second before (baseline) and during dead-end joins (a valid
  offer, a client that never connects) then room creations; the server's RSS before and after,
  and the rooms left once their tokens have expired (only the call's room may remain).
- prompts and malformed messages in that call: one participant sends --prompts prompt changes
  (built-in styles, none, unknown, over-long) with every malformed message among them (control
  and stats: wrong types, unhashable types, deep nesting, huge integers, over-long text, bad
  key-frame chunks; motion: mutated packets); the call must go on both ways, neither side may
  hear `bye`, and the last prompt must become active.

The issue's targets: 0 HTTP 500 in >= 1,000 signalling requests, 0 stranded seats, 0 foreign
exceptions in >= 100,000 packets and >= 2,000 .ccv files, no encoder panic at any rate, RSS
within +200 MB after 1,000 dead-end joins and 20,000 rooms, every room gone after expiry, the
call at >= 90 % of its frame rate throughout, surviving 1,000 prompt changes. The defaults are
those counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.report import Table, add_bench_parser, publish
from codec import BitstreamError, MotionDecoder, MotionEncoder, motion_schema
from codec.container import MAGIC as CCV_MAGIC
from codec.container import VERSION as CCV_VERSION
from codec.container import CcvFile, from_bytes, to_bytes
from server.settings import ServerSettings

DEFAULTS = {
    "requests": 1000,
    "packets": 100_000,
    "ccv": 2000,
    "joins": 1000,
    "rooms": 20_000,
    "prompts": 1000,
}
CALL_FPS = 10.0  # the concurrent call's capture rate: what 2 shared CPU cores sustain
SAMPLE_S = 0.25  # the viewers' shown frames are counted this often
FPS_WINDOW_S = 5.0  # "throughout": the frame rate of every such window of the churn counts
ROOMS_GONE_WITHIN_S = 180.0
# a connection idle past uvicorn's keep-alive (5 s) can be closed just as httpx reuses it
# ("Server disconnected without sending a response"): every request on a new connection
NO_KEEPALIVE = httpx.Limits(
    max_keepalive_connections=0
)  # dead-end participants leave once ICE fails (about a minute)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_bench_parser(
        subparsers, "attack", "hostile signalling, packets, .ccv files and churn", __doc__
    )
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name}", type=int, default=default, help=f"(default {default})")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="time limit of each attack (default 60)"
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=10.0,
        help="the live server's --token-ttl: churned rooms expire this soon (default 10)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=ServerSettings.connect_timeout_s,
        help="the live server's --connect-timeout: dead-end joins leave this soon "
        f"(default {ServerSettings.connect_timeout_s:g}, the server's)",
    )
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=20.0,
        help="the call's frame rate is measured this long before the churn (default 20)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the mutations")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = attack(
        {name: getattr(args, name) for name in DEFAULTS},
        seconds=args.seconds,
        seed=args.seed,
        live=LiveOptions(args.baseline_seconds, args.token_ttl, args.connect_timeout),
    )
    table = Table(
        "figures", "hostile input: what got through", ["attack", "count", "measure", "value"]
    )
    for row in results:
        table.add(**row)
    publish(args.out, "attack", [table], args)
    return 0


@dataclass
class LiveOptions:
    """How the live call's server runs, and how long the call is measured before the churn."""

    baseline_s: float = 20.0
    token_ttl_s: float = 10.0
    connect_timeout_s: float = ServerSettings.connect_timeout_s


def attack(
    counts: dict[str, int], seconds: float, seed: int, live: LiveOptions | None = None
) -> list[dict[str, Any]]:
    """One row per figure: attack, how many inputs it sent, what was measured, the value.
    The live call (churn, prompts) runs when joins, rooms or prompts are asked for."""
    rng = random.Random(seed)
    rows = [
        *attack_packets(counts["packets"], seconds, rng),
        *attack_ccv(counts["ccv"], seconds, rng),
        *attack_encoder(),
    ]
    rows += asyncio.run(_attack_signalling(counts["requests"], seconds, rng))
    if counts["joins"] or counts["rooms"] or counts["prompts"]:
        rows += asyncio.run(_attack_live_call(counts, seconds, rng, live or LiveOptions()))
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


def attack_encoder() -> list[dict[str, Any]]:
    """Encode and decode at every rate target, log-spaced from 0.001 to 1,000 kbps."""
    rng = random.Random(0)
    motion = _motion(40, rng)
    targets = [float(t) for t in np.geomspace(1e-3, 1e3, 31)]  # x1.58 apart
    seen: Counter[str] = Counter()

    def code(target: float, intra_period: int) -> None:
        encoder = MotionEncoder(motion_schema(), intra_period=intra_period, target_kbps=target)
        decoder = MotionDecoder(motion_schema())
        for i, features in enumerate(motion):
            if decoder.decode(encoder.encode(features, i * 40)) is None:
                raise RuntimeError(f"frame {i} at {target} kbps did not decode")

    runs = 0
    for target in targets:
        for intra_period in (1, 5, 250):
            _foreign(seen, code, target, intra_period)
            runs += 1
    failed = sum(seen.values())
    return [_row("encoder rate targets (0.001-1000 kbps)", runs, "runs that raised", failed)]


# -- server ------------------------------------------------------------------------------------


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


async def _attack_signalling(
    count: int, seconds: float, rng: random.Random
) -> list[dict[str, Any]]:
    from server.app import create_app
    from server.settings import ServerSettings

    settings = ServerSettings(
        preset="tiny",
        loopback_ice=True,
        max_rooms=count + 10,
        max_connecting=count + 10,  # every answered offer goes on through aiortc's accept
        rooms_per_client_per_minute=10**9,
    )
    app = create_app(settings)
    registry = app.state.registry
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    offer = await _client_offer()
    async with httpx.AsyncClient(transport=transport, base_url="http://attack") as http:
        statuses: Counter[int] = Counter()
        stranded, deadline, sent = 0, time.monotonic() + seconds, 0
        while sent < count and time.monotonic() < deadline:
            room = (await http.post("/rooms")).json()
            body = _mutated_body(room["tokens"][0], offer, rng)
            response = await http.post(f"/rooms/{room['room']}/offer", content=body)
            statuses[response.status_code] += 1
            held = registry.rooms.get(room["room"])
            if response.status_code != 200 and held is not None:
                stranded += bool(held.joining or held.participants)
            sent += 1
        await registry.close_all()
    return [
        _row("signalling requests (mutated)", sent, "HTTP 500", statuses[500]),
        _row("signalling requests (mutated)", sent, "stranded seats", stranded),
        _row("signalling requests (mutated)", sent, "statuses", dict(statuses)),
    ]


# -- a live call: churn, prompts, malformed messages -------------------------------------------


def server_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS in /proc/{pid}/status")


def write_styled_tiny_checkpoint(path: Path) -> Path:
    """Random tiny networks with built-in styles sketch and comic (they move the output's
    bias), so that prompt changes switch real styles."""
    import torch

    from models.checkpoint import build_models, save_checkpoint
    from models.config import get_preset
    from models.style_delta import StyleDelta

    torch.manual_seed(0)
    models = build_models(get_preset("tiny"))
    bias = models.generator.final.bias
    assert bias is not None
    styles = {
        name: StyleDelta(name, ("final",), {"final.bias": torch.full_like(bias, shift)})
        for name, shift in (("sketch", 0.5), ("comic", 2.0))
    }
    return save_checkpoint(path, models, styles=styles)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def served(
    preset: str, checkpoint: Path | None, options: Sequence[str], log: Path
) -> AsyncIterator[tuple[str, int]]:
    """`cartooncodec serve --preset preset [--checkpoint] --loopback-ice *options` on a free
    port of 127.0.0.1, in a process of its own (its output in ``log``); yields its URL and
    process id, and stops it on exit."""
    port = _free_port()
    command = [
        *(sys.executable, "-m", "cartooncodec", "serve", "--host", "127.0.0.1"),
        *("--port", str(port), "--preset", preset, "--loopback-ice", *options),
        *(("--checkpoint", str(checkpoint)) if checkpoint is not None else ()),
    ]
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            for _ in range(600):
                if process.returncode is not None:
                    raise RuntimeError(f"the server exited with {process.returncode}: see {log}")
                try:
                    if (await http.get(f"{url}/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass  # not listening yet
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"the server did not answer within 60 s: see {log}")
        yield url, process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()


class FrameRates:
    """Frames each viewer has shown, sampled every SAMPLE_S while the call runs."""

    def __init__(self, clients: Sequence[Any]) -> None:
        self.clients = clients
        self.samples: list[tuple[float, list[int], float]] = []  # (time, shown, load average)

    async def sample(self) -> None:
        while True:
            shown = [len(c.viewer.shown) for c in self.clients]
            self.samples.append((time.monotonic(), shown, os.getloadavg()[0]))
            await asyncio.sleep(SAMPLE_S)

    def fps(self, start: float, end: float) -> float:
        """Shown frames a second from the last sample at or before ``start`` to the first at
        or after ``end`` (monotonic), for the slower viewer."""
        before = [s for s in self.samples if s[0] <= start] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= end] or self.samples[-1:]
        (t0, first, _), (t1, last, _) = before[-1], after[0]
        if t1 <= t0:
            return 0.0
        return min(b - a for a, b in zip(first, last, strict=True)) / (t1 - t0)

    def windows(self, start: float, end: float) -> list[float]:
        """The frame rate of each FPS_WINDOW_S window from ``start`` to ``end``."""
        edges = np.arange(start, max(end - FPS_WINDOW_S / 2, start + 1e-3), FPS_WINDOW_S)
        return [self.fps(a, min(a + FPS_WINDOW_S, end)) for a in edges]


def malformed_messages(rng: random.Random) -> dict[str, list[str | bytes]]:
    """Every kind of bad message a participant can send, by channel."""
    text: list[str | bytes] = [
        '{"type": []}',
        '{"type": {}}',
        '{"type": null}',
        "[" * 4000,
        "{" * 3000,
        '{"type": "prompt", "id": ' + "9" * 5000 + ', "text": "x"}',
        '{"type": "prompt", "id": -1, "text": "sketch"}',
        '{"type": "prompt", "id": 1e999, "text": "sketch"}',
        '{"type": "prompt", "id": 3, "text": ' + json.dumps("x" * 5000) + "}",
        '{"type": "prompt", "id": 3, "text": ["sketch"]}',
        '{"type": "prompt", "id": 3}',
        '{"type": "ping", "t": "soon"}',
        '{"type": "report", "fps_shown": NaN, "latency_p50_ms": {}}',
        '{"type": "no such type"}',
        "not json",
        "",
        json.dumps({"type": "prompt", "id": 4, "text": "x" * 4100}),
    ]
    binary: list[str | bytes] = [b"", b"\x00" * 8, rng.randbytes(300), b"KF" + rng.randbytes(64)]
    return {"control": text + binary, "stats": text + binary}


async def _attack_live_call(
    counts: dict[str, int], seconds: float, rng: random.Random, live: LiveOptions
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="cartooncodec-attack-") as folder:
        checkpoint = write_styled_tiny_checkpoint(Path(folder) / "tiny.pt")
        max_rooms = counts["rooms"] + counts["joins"] + 10
        log = Path(folder) / "server.log"
        server = served(
            "tiny",
            checkpoint,
            [
                *("--token-ttl", str(live.token_ttl_s), "--max-rooms", str(max_rooms)),
                *("--connect-timeout", str(live.connect_timeout_s)),
                *("--rooms-per-minute", str(10**9)),
            ],
            log,
        )
        async with (
            server as (url, pid),
            httpx.AsyncClient(timeout=30.0, limits=NO_KEEPALIVE) as http,
        ):
            return await _in_a_call(http, url, pid, checkpoint, counts, seconds, rng, live)


async def _in_a_call(
    http: Any,
    url: str,
    pid: int,
    checkpoint: Path,
    counts: dict[str, int],
    seconds: float,
    rng: random.Random,
    live: LiveOptions,
) -> list[dict[str, Any]]:
    """Alice and Mallory in ``room``: the baseline, the churn, Mallory's barrage, the expiry."""
    from client.callclient import CallClient, CallConfig

    configs = [
        CallConfig(
            server=url,
            room="",  # the room is created once the clients are built: its tokens are fresh
            token="",
            prompt="sketch",
            preset="tiny",
            checkpoint=str(checkpoint),
            fps=CALL_FPS,
            name=name,
            seed=seat,
        )
        for seat, name in enumerate(("alice", "mallory"))
    ]
    clients = await asyncio.gather(*(asyncio.to_thread(CallClient, c) for c in configs))
    room = (await http.post(f"{url}/rooms")).json()
    for seat, config in enumerate(configs):
        config.room, config.token = room["room"], room["tokens"][seat]
    calls = [asyncio.create_task(c.run()) for c in clients]
    rates = FrameRates(clients)
    sampling = asyncio.create_task(rates.sample())
    try:
        await _until(lambda: all(len(c.viewer.shown) > 0 for c in clients), 60.0, calls)
        start = time.monotonic()
        await asyncio.sleep(live.baseline_s)
        baseline = rates.fps(start, time.monotonic())
        windows = [round(w, 1) for w in rates.windows(start, time.monotonic())]
        rows = [
            _row("call before the churn", 2, "fps shown", round(baseline, 2)),
            _row("call before the churn", 2, f"fps shown per {FPS_WINDOW_S:g} s window", windows),
        ]
        rows += await _churn(url, pid, counts, seconds, rates, baseline)
        rows += await _barrage(clients, counts["prompts"], seconds, rng, rates, baseline)
        rows += await _after_expiry(http, url, counts["rooms"] + counts["joins"])
        return rows
    finally:
        sampling.cancel()
        for client in clients:
            client.stop()
        await asyncio.gather(*calls, sampling, return_exceptions=True)


async def _until(
    condition: Callable[[], bool], timeout_s: float, calls: Sequence[asyncio.Task[Any]] = ()
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        ended = [c for c in calls if c.done()]
        if ended:
            raise RuntimeError(f"the call ended before it was up: {ended[0].exception()!r}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not reached within {timeout_s:g} s")
        await asyncio.sleep(0.2)


def churn_requests(url: str, offer: str, joins: int, rooms: int, seconds: float) -> Counter[int]:
    """``joins`` dead-end joins (a room each), then ``rooms`` room creations, each for at most
    ``seconds``; the HTTP statuses. Run in a process of its own, so that sending the requests
    takes nothing from the call being measured in this one."""

    async def send() -> Counter[int]:
        statuses: Counter[int] = Counter()
        async with httpx.AsyncClient(timeout=30.0, limits=NO_KEEPALIVE) as http:
            deadline, sent = time.monotonic() + seconds, 0
            while sent < joins and time.monotonic() < deadline:
                room = (await http.post(f"{url}/rooms")).json()
                join = {"token": room["tokens"][0], "sdp": offer, "type": "offer"}
                answer = await http.post(f"{url}/rooms/{room['room']}/offer", json=join)
                statuses[answer.status_code] += 1
                sent += 1
            deadline, sent = time.monotonic() + seconds, 0
            while sent < rooms and time.monotonic() < deadline:
                statuses[(await http.post(f"{url}/rooms")).status_code] += 1
                sent += 1
        return statuses

    return asyncio.run(send())


async def _churn(
    url: str, pid: int, counts: dict[str, int], seconds: float, rates: FrameRates, baseline: float
) -> list[dict[str, Any]]:
    """Dead-end joins, then room creations, against the call's server, from another process."""
    offer = await _client_offer()
    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        await loop.run_in_executor(pool, churn_requests, url, offer, 0, 0, 0.0)  # started
        rss_start = server_rss_mb(pid)
        churn_start = time.monotonic()
        joins = await loop.run_in_executor(
            pool, churn_requests, url, offer, counts["joins"], 0, seconds
        )
        rss_joins, joins_end = server_rss_mb(pid), time.monotonic()
        rooms = await loop.run_in_executor(
            pool, churn_requests, url, offer, 0, counts["rooms"], seconds
        )
        churn_end = time.monotonic()
    joined, created = sum(joins.values()), rooms[200]
    windows = rates.windows(churn_start, churn_end)
    worst = min(windows, default=rates.fps(churn_start, churn_end))
    load = [s[2] for s in rates.samples if churn_start <= s[0] <= churn_end]
    call = "call during the churn"
    return [
        _row(
            "dead-end joins",
            joined,
            "server RSS MB start -> end",
            f"{rss_start:.0f} -> {rss_joins:.0f}",
        ),
        _row("dead-end joins", joined, "seconds", round(joins_end - churn_start, 1)),
        _row(
            "room creations",
            created,
            "server RSS MB start -> end",
            f"{rss_joins:.0f} -> {server_rss_mb(pid):.0f}",
        ),
        _row("room creations", created, "seconds", round(churn_end - joins_end, 1)),
        _row("dead-end joins", joined, "HTTP statuses", dict(joins)),
        _row("room creations", created, "HTTP statuses", dict(rooms)),
        _row(call, 2, "fps shown, whole churn", round(rates.fps(churn_start, churn_end), 2)),
        _row(call, 2, f"fps shown, worst {FPS_WINDOW_S:g} s window", round(worst, 2)),
        _row(call, 2, "worst window / before", round(worst / max(baseline, 1e-9), 3)),
        _row(call, 2, f"fps shown per {FPS_WINDOW_S:g} s window", [round(w, 1) for w in windows]),
        _row(
            call,
            2,
            "machine load average, mean / max",
            f"{np.mean(load):.1f} / {max(load):.1f}" if load else None,
        ),
    ]


async def _barrage(
    clients: Sequence[Any],
    prompts: int,
    seconds: float,
    rng: random.Random,
    rates: FrameRates,
    baseline: float,
) -> list[dict[str, Any]]:
    """Mallory changes prompts ``prompts`` times with every malformed message among them."""
    from pipeline import protocol

    alice, mallory = clients
    bad = malformed_messages(rng)
    texts = ["sketch", "comic", "", "a pencil sketch", "an unknown style", "x" * 300]
    stream = MotionEncoderStream(rng)
    start = time.monotonic()
    deadline, sent = start + seconds, 0
    while sent < prompts and time.monotonic() < deadline:
        mallory.uplink.send_prompt(texts[sent % len(texts)])
        channel = rng.choice([protocol.CONTROL, protocol.STATS])
        mallory.connection.channels[channel].send(rng.choice(bad[channel]))
        mallory.connection.channels[protocol.MOTION].send(_mutate(stream.next(), rng))
        sent += 1
        await asyncio.sleep(0.01)
    for channel, messages in bad.items():  # and each one at least once
        for message in messages:
            mallory.connection.channels[channel].send(message)
    mallory.uplink.send_prompt("comic")
    last = mallory.uplink.prompt_id
    barrage_end = time.monotonic()
    await _until(lambda: last in mallory.styles, 30.0)
    await asyncio.sleep(FPS_WINDOW_S)
    after = rates.fps(barrage_end, time.monotonic())
    ended = [c.config.name for c in clients if c.peer_left.is_set() or c.failure is not None]
    return [
        _row(
            "prompt changes with malformed messages", sent, "seconds", round(barrage_end - start, 1)
        ),
        _row(
            "prompt changes with malformed messages",
            sent,
            "last prompt active as",
            mallory.styles[last],
        ),
        _row(
            "prompt changes with malformed messages",
            sent,
            "fps shown during",
            round(rates.fps(start, barrage_end), 2),
        ),
        _row(
            "prompt changes with malformed messages",
            sent,
            "fps shown after / before",
            round(after / max(baseline, 1e-9), 3),
        ),
        _row(
            "prompt changes with malformed messages", sent, "participants told bye or failed", ended
        ),
        _row(
            "prompt changes with malformed messages",
            sent,
            "alice heard bye",
            alice.peer_left.is_set(),
        ),
    ]


class MotionEncoderStream:
    """Valid motion packets to mutate, one at a time."""

    def __init__(self, rng: random.Random) -> None:
        self._packets = _stream(rng)
        self._next = 0

    def next(self) -> bytes:
        packet = self._packets[self._next % len(self._packets)]
        self._next += 1
        return packet


async def _after_expiry(http: Any, url: str, created: int) -> list[dict[str, Any]]:
    """Rooms left (the call's own aside) once every token has expired and every dead-end
    participant has left: the server's health, polled until none is left or for
    ROOMS_GONE_WITHIN_S (this runs after the prompt changes, over 15 s after the churn)."""
    started = time.monotonic()
    left = -1
    while time.monotonic() - started < ROOMS_GONE_WITHIN_S:
        left = (await http.get(f"{url}/health")).json()["rooms"] - 1
        if left == 0:
            break
        await asyncio.sleep(1.0)
    waited = round(time.monotonic() - started)
    return [
        _row("churn (joins, rooms)", created, "rooms left (the call's aside) after expiry", left),
        _row("churn (joins, rooms)", created, "seconds polled until none was left", waited),
    ]


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


def _row(attack: str, count: int, measure: str, value: Any) -> dict[str, Any]:
    return {"attack": attack, "count": count, "measure": measure, "value": value}
