"""`cartooncodec demo`: a whole call in one process — server on loopback, alice and bob.

Each participant swaps prompts twice (the last swap goes back to an earlier, cached style).
The report pairs each sender with the viewer: frames sent by alice vs shown at bob, alice's
uplink, bob's downlink, latency measured at bob, and how long alice's swaps took to show at bob.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import torch

from client.callclient import CallClient, CallConfig, CallResult
from pipeline.meters import percentiles
from server.app import running_server
from server.settings import ServerSettings

logger = logging.getLogger(__name__)

NAMES = ("alice", "bob")
# (initial prompt, then prompts at fractions of the call); the last goes back to a cached style.
PROMPT_PLANS = {
    "alice": ("pencil sketch", [(0.3, "comic book"), (0.65, "pencil sketch")]),
    "bob": ("watercolor painting", [(0.45, "pop art"), (0.8, "watercolor painting")]),
}


@dataclass
class DemoOptions:
    out: Path = Path("demo-out")
    seconds: float = 20.0
    preset: str = "lite-128"
    checkpoint: str | None = None
    fps: float = 10.0
    data: Path | None = None  # a folder with train/*.mp4; None: synthetic portraits


@dataclass
class Swap:
    sender: str
    prompt_id: int
    text: str
    at_s: float
    latency_ms: float | None  # prompt sent -> first frame in the new style shown
    stale_frames: int | None  # frames shown after the prompt was sent, still in an older style


@dataclass
class DemoReport:
    options: DemoOptions
    inputs: dict[str, str]
    results: dict[str, CallResult]
    swaps: list[Swap] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for sender, viewer in (NAMES, NAMES[::-1]):
            sent, seen = self.results[sender].summary(), self.results[viewer].summary()
            swaps = [s.latency_ms for s in self.swaps if s.sender == sender and s.latency_ms]
            stale = [
                s.stale_frames
                for s in self.swaps
                if s.sender == sender and s.stale_frames is not None
            ]
            rows.append(
                {
                    "direction": f"{sender} -> {viewer}",
                    "frames_sent": sent["frames_sent"],
                    "frames_shown": seen["frames_shown"],
                    "fps_sent": sent["fps_sent"],
                    "fps_shown": seen["fps_shown"],
                    "uplink_motion_kbps": sent["uplink_motion_kbps"],
                    "uplink_control_kbps": sent["uplink_control_kbps"],
                    "uplink_wire_kbps": sent["uplink_total_kbps"],
                    "downlink_kbps": seen["downlink_kbps"],
                    "latency_p50_ms": seen["latency_p50_ms"],
                    "latency_p95_ms": seen["latency_p95_ms"],
                    "latency_p99_ms": seen["latency_p99_ms"],
                    "av_offset_p50_ms": seen["av_offset_p50_ms"],
                    "av_offset_p95_abs_ms": seen["av_offset_p95_abs_ms"],
                    "swap_ms_max": max(swaps) if swaps else None,
                    "swap_stale_frames_max": max(stale) if stale else None,
                }
            )
        return rows

    def table(self) -> str:
        header = (
            "| direction | frames sent | frames shown | fps sent | fps shown | uplink motion kbps "
            "| uplink control kbps | uplink on the wire kbps | downlink kbps "
            "| latency p50 / p95 / p99 ms | A/V offset p50 / p95 of size ms "
            "| prompt swap ms (max) | swap stale frames (max) |"
        )
        lines = [header, "|" + "---|" * 13]
        for r in self.rows():
            latency = " / ".join(_fmt(r[f"latency_p{q}_ms"], 0) for q in (50, 95, 99))
            offset = f"{_fmt(r['av_offset_p50_ms'], 0)} / {_fmt(r['av_offset_p95_abs_ms'], 0)}"
            lines.append(
                f"| {r['direction']} | {r['frames_sent']} | {r['frames_shown']} "
                f"| {r['fps_sent']:.1f} | {r['fps_shown']:.1f} | {r['uplink_motion_kbps']:.2f} "
                f"| {r['uplink_control_kbps']:.2f} | {r['uplink_wire_kbps']:.1f} "
                f"| {r['downlink_kbps']:.1f} | {latency} | {offset} "
                f"| {_fmt(r['swap_ms_max'], 0)} | {_fmt(r['swap_stale_frames_max'], 0)} |"
            )
        return "\n".join(lines)


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def pick_inputs(data: Path | None) -> list[str]:
    """Two training clips of ``data`` (never eval clips), else the synthetic portrait twice."""
    clips = sorted(data.glob("train/*.mp4")) if data is not None else []
    if len(clips) >= 2:
        return [str(clips[0]), str(clips[1])]
    logger.info("no training clips under %s: using synthetic talking portraits", data)
    return ["synthetic", "synthetic"]


async def run_demo(options: DemoOptions) -> DemoReport:
    # Four networks (two extractors, two renderers) run at once on their own threads: one
    # intra-op thread each keeps them from fighting over the cores.
    torch.set_num_threads(1)
    settings = ServerSettings(
        preset=options.preset, checkpoint=options.checkpoint, loopback_ice=True
    )
    async with running_server(settings) as url:
        report = await _call(options, url)
    report.swaps = measure_swaps(report.results)
    report.files = write_outputs(report)
    return report


async def _call(options: DemoOptions, url: str) -> DemoReport:
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{url}/rooms")
        response.raise_for_status()
        room = response.json()
    options.out.mkdir(parents=True, exist_ok=True)
    inputs = dict(zip(NAMES, pick_inputs(options.data), strict=True))
    configs = []
    for seat, name in enumerate(NAMES):
        first, later = PROMPT_PLANS[name]
        configs.append(
            CallConfig(
                server=url,
                room=room["room"],
                token=room["tokens"][seat],
                input=inputs[name],
                prompt=first,
                prompt_schedule=[(f * options.seconds, text) for f, text in later],
                preset=options.preset,
                checkpoint=options.checkpoint,
                fps=options.fps,
                seconds=options.seconds,
                record=options.out / f"{name}.mp4",
                name=name,
                seed=seat,
            )
        )
    clients = await asyncio.gather(*(asyncio.to_thread(CallClient, c) for c in configs))
    results = await asyncio.gather(*(c.run() for c in clients))
    return DemoReport(options, inputs, dict(zip(NAMES, results, strict=True)))


def measure_swaps(results: dict[str, CallResult]) -> list[Swap]:
    """For every prompt after the first: sent -> first frame in that style shown at the viewer."""
    swaps = []
    for sender, viewer in (NAMES, NAMES[::-1]):
        sent, shown = results[sender], results[viewer].shown
        started = sent.prompts[0].sent_ms if sent.prompts else 0.0
        for prompt in sent.prompts[1:]:
            after = [f for f in shown if f.arrival_ms >= prompt.sent_ms]
            first = next((f for f in after if f.prompt_id == prompt.id), None)
            stale = (
                None
                if first is None
                else sum(
                    1 for f in after if f.arrival_ms < first.arrival_ms and f.prompt_id < prompt.id
                )
            )
            swaps.append(
                Swap(
                    sender=sender,
                    prompt_id=prompt.id,
                    text=prompt.text,
                    at_s=(prompt.sent_ms - started) / 1000,
                    latency_ms=None if first is None else first.arrival_ms - prompt.sent_ms,
                    stale_frames=stale,
                )
            )
    return swaps


def write_outputs(report: DemoReport) -> list[str]:
    out = report.options.out
    (out / "latency.json").write_text(json.dumps(_latency_json(report), indent=1))
    plot_latency(report, out / "latency.png")
    (out / "summary.md").write_text(_summary_markdown(report))
    return [f"{name}.mp4" for name in NAMES] + ["latency.json", "latency.png", "summary.md"]


def _origin_ms(report: DemoReport) -> float:
    return min(r.prompts[0].sent_ms for r in report.results.values() if r.prompts)


def _latency_json(report: DemoReport) -> dict[str, Any]:
    origin = _origin_ms(report)
    viewers = {}
    for name, result in report.results.items():
        viewers[name] = {
            "input": report.inputs[name],
            "summary": result.summary(),
            "prompts": [
                {"id": p.id, "text": p.text, "at_s": (p.sent_ms - origin) / 1000}
                for p in result.prompts
            ],
            "style_errors": result.style_errors,
            "frames_shown": [
                {
                    "t_s": round((f.arrival_ms - origin) / 1000, 4),
                    "latency_ms": round(f.latency_ms, 2),
                    "seq": f.seq,
                    "prompt_id": f.prompt_id,
                }
                for f in result.shown
            ],
        }
    return {
        "preset": report.options.preset,
        "seconds": report.options.seconds,
        "fps": report.options.fps,
        "participants": viewers,
        "rows": report.rows(),
        "swaps": [vars(s) for s in report.swaps],
        "latency_percentiles_all_ms": percentiles(
            [f.latency_ms for r in report.results.values() for f in r.shown]
        ),
    }


def plot_latency(report: DemoReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = _origin_ms(report)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colors = {"alice": "tab:blue", "bob": "tab:orange"}
    for sender, viewer in (NAMES, NAMES[::-1]):
        frames = report.results[viewer].shown
        ax.plot(
            [(f.arrival_ms - origin) / 1000 for f in frames],
            [f.latency_ms for f in frames],
            ".",
            markersize=3,
            color=colors[sender],
            label=f"{sender} shown at {viewer}",
        )
    for swap in report.swaps:
        ax.axvline(swap.at_s, color=colors[swap.sender], linestyle="--", linewidth=1)
        label = f"{swap.sender}: {swap.text}"
        ax.annotate(
            label,
            (swap.at_s, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=7,
            va="top",
            ha="right",
            color=colors[swap.sender],
        )
    ax.set_xlabel("call time (s)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title(
        f"CartoonCodec demo, {report.options.preset}: capture -> shown (dashed: prompt swaps)"
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary_markdown(report: DemoReport) -> str:
    opts = report.options
    lines = [
        "# CartoonCodec demo",
        "",
        f"Preset `{opts.preset}`, {opts.seconds:g} s at {opts.fps:g} fps capture, server and both "
        "participants in one process on loopback.",
        "",
        "Inputs: " + ", ".join(f"{n}: `{report.inputs[n]}`" for n in NAMES),
        "",
        report.table(),
        "",
        "## Prompt swaps",
        "",
        "| sender | at (s) | prompt | shown after (ms) | stale frames |",
        "|---|---|---|---|---|",
    ]
    for s in report.swaps:
        lines.append(
            f"| {s.sender} | {s.at_s:.1f} | {s.text} | {_fmt(s.latency_ms, 0)} "
            f"| {_fmt(s.stale_frames, 0)} |"
        )
    errors = [e for r in report.results.values() for e in r.style_errors]
    if errors:
        lines += ["", "## Messages from the server", ""] + [f"- {e}" for e in errors]
    lines += [
        "",
        "Files: `alice.mp4` (what alice saw: bob's cartoon), `bob.mp4`, `latency.json`, "
        "`latency.png`.",
        "",
    ]
    return "\n".join(lines)
