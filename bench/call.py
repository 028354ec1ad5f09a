"""`cartooncodec bench call`: a real two-party call on loopback, under motion packet loss.

For each render mode (`--render`: `server`, the server renders each face and sends video;
`local`, it relays the motion and each viewer renders the other itself) and each loss rate P,
the server and two participants (alice, bob) run in this process as in `cartooncodec demo`
(aiortc on both ends), for `--seconds`.
Each sender drops a fraction P of its motion packets at random just before they would leave
(the motion channel is unordered with no retransmission, so this is what a lossy network
does to it). Reported per direction: end-to-end latency percentiles (capture at the sender to
the rendered frame decoded at the viewer), fps sent and shown, the share of sent frames shown,
the longest freeze between two shown frames, the uplink and downlink kbps (the downlink on
the wire: video, or relayed motion), and the median and p95 distance
(in frames) of the reference each inter frame predicts from, which is the acknowledgements'
round trip and sets the rate. A frame the server did not receive in time is concealed (its
motion extrapolated, codec.concealment) and shown marked as such: `concealed` counts them,
`decoded_share` and `longest_decoded_gap_ms` leave them out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.report import (
    Table,
    add_bench_parser,
    add_model_arguments,
    new_figure,
    publish,
    save_figure,
)
from bench.wiretap import WireTap
from codec.packet import unpack_packet
from codec.prediction import inter_distance
from pipeline.protocol import ACK_MARKER, RENDER_MODES, unbundle

if TYPE_CHECKING:
    from client.callclient import CallConfig, CallResult

log = logging.getLogger(__name__)

NAMES = ("alice", "bob")
PROMPTS = {"alice": "pencil sketch", "bob": "comic book"}
DEFAULT_LOSSES = (0.0, 0.1, 0.3)
CALL_FPS = 10.0  # the capture rate `cartooncodec demo` uses (DEMO_FPS), tested equal


class DroppingChannel:
    """A data channel stand-in that loses a fraction of the motion messages sent on it, and
    notes the reference distance of each inter packet (how far back the sender predicts
    from: the acknowledgement's round trip in frames)."""

    def __init__(self, channel: Any, loss: float, seed: int) -> None:
        self._channel = channel
        self._loss = loss
        self._rng = np.random.default_rng(seed)
        self.dropped = 0
        self.distances: list[int] = []

    @property
    def readyState(self) -> str:  # noqa: N802 (the aiortc attribute it stands in for)
        return str(self._channel.readyState)

    @property
    def id(self) -> int:
        """The SCTP stream of the channel it stands in for."""
        return int(self._channel.id)

    def send(self, data: bytes) -> None:
        """A motion-channel message: lost whole (with every frame and acknowledgement it
        bundles) with probability ``loss``; a message of acknowledgements only always passes."""
        packets = [item for item in unbundle(data) if item[:1] != bytes([ACK_MARKER])]
        for packet in map(unpack_packet, packets):
            if not packet.intra:
                self.distances.append(inter_distance(packet.payload))
        if packets and self._rng.random() < self._loss:
            self.dropped += len(packets)
            return
        self._channel.send(data)


@dataclass
class CallRun:
    """One participant's view of a call at one loss rate, in one render mode."""

    render: str
    loss: float
    sender: str
    viewer: str
    sent: CallResult
    seen: CallResult
    dropped: int
    distances: list[int]
    wire: dict[str, int]  # the sender's uplink bytes by item (bench.wiretap)

    def row(self) -> dict[str, Any]:
        sent, seen = self.sent.summary(), self.seen.summary()
        times = [f.arrival_ms for f in self.seen.shown]
        decoded = [f.arrival_ms for f in self.seen.shown if not f.concealed]
        return {
            "render": self.render,
            "loss": self.loss,
            "direction": f"{self.sender} -> {self.viewer}",
            "frames_sent": sent["frames_sent"],
            "dropped": self.dropped,
            "frames_shown": seen["frames_shown"],
            "shown_share": seen["frames_shown"] / max(sent["frames_sent"], 1),
            "concealed": seen["frames_concealed"],
            "decoded_share": len(decoded) / max(sent["frames_sent"], 1),
            "fps_sent": sent["fps_sent"],
            "fps_shown": seen["fps_shown"],
            "longest_freeze_ms": float(np.max(np.diff(times))) if len(times) > 1 else None,
            "longest_decoded_gap_ms": float(np.max(np.diff(decoded))) if len(decoded) > 1 else None,
            "latency_p50_ms": seen["latency_p50_ms"],
            "latency_p95_ms": seen["latency_p95_ms"],
            "latency_p99_ms": seen["latency_p99_ms"],
            "av_offset_p50_ms": seen["av_offset_p50_ms"],
            "av_offset_p95_abs_ms": seen["av_offset_p95_abs_ms"],
            "ref_distance_p50": _percentile(self.distances, 50),
            "ref_distance_p95": _percentile(self.distances, 95),
            "uplink_motion_kbps": sent["uplink_motion_kbps"],
            "uplink_wire_kbps": sent["uplink_total_kbps"],
            "uplink_packets_per_s": sent["uplink_packets_per_s"],
            "uplink_motion_messages_per_s": sent["uplink_motion_messages_per_s"],
            "downlink_kbps": seen["downlink_kbps"],
            "downlink_packets_per_s": seen["downlink_packets_per_s"],
            "keyframe_bytes": sent["keyframe_bytes"],
        }


def _percentile(values: list[int], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def lossy_client(config: CallConfig, loss: float, seed: int) -> Any:
    """A CallClient whose motion channel drops ``loss`` of the packets once connected."""
    from client.callclient import CallClient
    from pipeline import protocol

    class LossyCallClient(CallClient):
        motion_channel: DroppingChannel | None = None

        async def connect(self) -> None:
            await super().connect()
            self.motion_channel = DroppingChannel(
                self.connection.channels[protocol.MOTION], loss, seed
            )
            self.connection.channels[protocol.MOTION] = self.motion_channel  # type: ignore[assignment]

    return LossyCallClient(config)


async def loopback_call(
    args: argparse.Namespace, inputs: list[str], render: str, loss: float, tap: WireTap
) -> list[CallRun]:
    """One call between alice and bob through a server on 127.0.0.1; both lose ``loss``, and
    both see the other rendered in ``render`` mode."""
    import httpx

    from client.callclient import CallConfig
    from server.app import running_server
    from server.settings import ServerSettings

    settings = ServerSettings(preset=args.preset, checkpoint=args.checkpoint, loopback_ice=True)
    async with running_server(settings) as url:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.post(f"{url}/rooms")
            response.raise_for_status()
            room = response.json()
        configs = [
            CallConfig(
                server=url,
                room=room["room"],
                token=room["tokens"][seat],
                input=source,
                prompt=PROMPTS[name],
                preset=args.preset,
                checkpoint=args.checkpoint,
                fps=args.fps,
                seconds=args.seconds,
                name=name,
                seed=seat,
                render_locally=render == "local",
                bundle=args.bundle,
                mute=args.mute,
            )
            for seat, (name, source) in enumerate(zip(NAMES, inputs, strict=True))
        ]
        clients = await asyncio.gather(
            *(asyncio.to_thread(lossy_client, c, loss, seat) for seat, c in enumerate(configs))
        )
        results = await asyncio.gather(*(c.run() for c in clients))
    by_name = dict(zip(NAMES, zip(results, clients, strict=True), strict=True))
    runs = []
    for sender, viewer in (NAMES, NAMES[::-1]):
        (sent, client), (seen, _) = by_name[sender], by_name[viewer]
        channel = client.motion_channel
        dropped, distances = (channel.dropped, channel.distances) if channel else (0, [])
        connection = client.connection
        streams = {channel.id: label for label, channel in connection.channels.items()}
        wire = tap.breakdown(connection.dtls_transports()[0], streams, sent.wire.bytes_sent)
        runs.append(CallRun(render, loss, sender, viewer, sent, seen, dropped, distances, wire))
    return runs


def call_inputs(clips: Path | None) -> list[str]:
    """Two videos of ``clips`` (alice gets the first), else the synthetic talking portrait."""
    from training.videos import VIDEO_EXTENSIONS, discover

    if clips is not None and clips.is_dir():
        videos = [p for p in discover(clips) if p.suffix.lower() in VIDEO_EXTENSIONS]
        if len(videos) >= 2:
            return [str(videos[0]), str(videos[1])]
        log.warning("fewer than two videos in %s: using synthetic portraits", clips)
    return ["synthetic", "synthetic"]


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from training.videos import data_folder

    losses = check_losses(args.loss)
    inputs = call_inputs(args.clips or data_folder(None) / "eval")
    runs: list[CallRun] = []
    threads = torch.get_num_threads()
    # Two extractors and two renderers share the cores (as in the demo): one thread each.
    torch.set_num_threads(1)
    calls = [(render, loss) for render in args.render for loss in losses]
    tap = WireTap()
    try:
        with tap.tapping():
            for render, loss in tqdm(calls, desc="bench call", unit="call"):
                runs += asyncio.run(loopback_call(args, inputs, render, loss, tap))
    finally:
        torch.set_num_threads(threads)
    table = Table(
        "call",
        f"Loopback call, {args.preset}, {args.fps:g} fps capture, {args.bundle} frame(s) a "
        f"motion message, {'no sound' if args.mute else 'with sound'}, {args.seconds:g} s per "
        "render mode and loss rate",
        tuple(runs[0].row()),
    )
    for item in runs:
        table.add(**item.row())
    wire = wire_table(runs)
    plot = plot_call(runs, args.out / "call.png")
    details = {
        "inputs": dict(zip(NAMES, inputs, strict=True)),
        "latency_ms": {
            f"{r.render}:{r.loss}:{r.sender}->{r.viewer}": [f.latency_ms for f in r.seen.shown]
            for r in runs
        },
    }
    publish(args.out, "call", [table, wire], args, details=details, plots=[plot])
    return 0


def wire_table(runs: list[CallRun]) -> Table:
    """Each sender's uplink on the wire by item (kbps and share), in the lossless calls."""
    lowest = min(r.loss for r in runs)
    items = sorted({key for r in runs for key in r.wire}, key=_wire_order)
    table = Table(
        "wire",
        f"Uplink on the wire by item (kbps), loss {lowest:.0%}: payload, SCTP and DTLS framing, "
        "SACKs (delayed, riding on DATA when they can: pipeline/sctp.py), RTP/RTCP",
        ("render", "direction", "total_kbps", *items, "framing_share"),
    )
    for r in runs:
        if r.loss != lowest:
            continue
        seconds = max(r.sent.duration_s, 1e-6)
        kbps = {key: r.wire.get(key, 0) * 8 / 1000 / seconds for key in items}
        total = sum(r.wire.values())
        payload = sum(v for k, v in r.wire.items() if k.endswith("payload"))
        table.add(
            render=r.render,
            direction=f"{r.sender} ->",
            total_kbps=total * 8 / 1000 / seconds,
            framing_share=1 - payload / max(total, 1),
            **kbps,
        )
    return table


def _wire_order(key: str) -> tuple[int, str]:
    order = ("motion payload", "control payload", "stats payload", "SCTP DATA framing")
    return (order.index(key), key) if key in order else (len(order), key)


def check_losses(losses: list[float]) -> list[float]:
    bad = [p for p in losses if not 0.0 <= p < 1.0]
    if bad or not losses:
        raise ValueError(f"--loss takes fractions in [0, 1), e.g. 0.1 for 10%; got {losses}")
    return sorted(set(losses))


def plot_call(runs: list[CallRun], path: Path) -> Path:
    """Left: latency over the lossless call(s), alice shown at bob, per render mode; right:
    the share of sent frames shown and decoded against the loss rate, per render mode."""
    fig, (timeline, summary) = new_figure(ncols=2, width=5.5)
    renders = sorted({r.render for r in runs}, key=list(RENDER_MODES).index)
    lowest = min(r.loss for r in runs)
    for item in runs:
        if item.sender != NAMES[0] or item.loss != lowest:
            continue
        frames = item.seen.shown
        if frames:
            start = frames[0].arrival_ms
            timeline.plot(
                [(f.arrival_ms - start) / 1000 for f in frames],
                [f.latency_ms for f in frames],
                ".",
                markersize=3,
                label=f"rendered: {item.render}",
            )
    timeline.set_xlabel(f"call time (s), {NAMES[0]} shown at {NAMES[1]}, loss {lowest:.0%}")
    timeline.set_ylabel("end-to-end latency (ms)")
    timeline.set_ylim(bottom=0)
    timeline.legend()
    losses = sorted({r.loss for r in runs})
    for render in renders:
        rows = [[r.row() for r in runs if r.loss == p and r.render == render] for p in losses]
        shown = [100 * np.mean([row["shown_share"] for row in group]) for group in rows]
        decoded = [100 * np.mean([row["decoded_share"] for row in group]) for group in rows]
        x = [100 * p for p in losses]
        (line,) = summary.plot(x, shown, "o-", label=f"{render}: shown")
        summary.plot(x, decoded, "s--", color=line.get_color(), label=f"{render}: decoded")
    summary.set_xlabel("motion packets lost (%)")
    summary.set_ylabel("% of sent frames")
    summary.set_ylim(0, 105)
    summary.legend()
    summary.set_title("degradation with motion packet loss")
    return save_figure(fig, path)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_bench_parser(
        subparsers,
        "call",
        "loopback call: latency percentiles, fps, kbps, and degradation with packet loss",
        __doc__,
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each call")
    parser.add_argument(
        "--loss",
        type=float,
        nargs="+",
        default=list(DEFAULT_LOSSES),
        help="fractions of motion packets to drop, one call each (default 0 0.1 0.3)",
    )
    parser.add_argument(
        "--render",
        nargs="+",
        choices=RENDER_MODES,
        default=list(RENDER_MODES),
        help="render modes, a call per mode and loss rate (default: server local)",
    )
    parser.add_argument(
        "--mute", action="store_true", help="calls without sound (to compare what it costs)"
    )
    parser.add_argument(
        "--bundle",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="frames per motion message, as `call --bundle` (default 1)",
    )
    parser.add_argument(
        "--clips",
        type=Path,
        help="folder whose first two videos are the cameras (default $CARTOONCODEC_DATA/eval, "
        "else ../shared/data/eval; synthetic portraits if absent)",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--fps",
        type=float,
        default=CALL_FPS,
        help=f"capture rate (default {CALL_FPS:g}, as `cartooncodec demo`)",
    )
    parser.set_defaults(func=run)
