"""`cartooncodec demo`: whole calls in one process — server on loopback, alice and bob.

The call runs once per render mode (``pipeline.protocol.RENDER_MODES``): ``server`` (the
server renders each face and sends it as video) and ``local`` (the server relays motion and
each participant renders the other itself). Each participant swaps prompts twice (the last swap
goes back to an earlier, cached style). The report pairs each sender with the viewer, per
mode: frames sent by alice vs shown at bob, alice's uplink, bob's downlink, latency measured at
bob, and how long alice's swaps took to show at bob.
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
from pipeline.protocol import RENDER_MODES
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
    modes: tuple[str, ...] = RENDER_MODES  # one call each, in this order
    mute: bool = False  # no sound: what the faces cost alone


@dataclass
class Swap:
    sender: str
    prompt_id: int
    text: str
    at_s: float
    latency_ms: float | None  # prompt sent -> first frame in the new style shown
    stale_frames: int | None  # frames shown after the prompt was sent, still in an older style


@dataclass
class DemoRun:
    """One call of the demo: both participants in one render mode."""

    mode: str
    results: dict[str, CallResult]
    swaps: list[Swap] = field(default_factory=list)

    def recording(self, name: str) -> str:
        return recording_name(name, self.mode)


def recording_name(name: str, mode: str) -> str:
    """The MP4 of what ``name`` saw in the call of render ``mode``."""
    return f"{name}.mp4" if mode == RENDER_MODES[0] else f"{name}-{mode}.mp4"


@dataclass
class DemoReport:
    options: DemoOptions
    inputs: dict[str, str]
    runs: list[DemoRun]
    files: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [row for run in self.runs for row in _rows(run)]

    def table(self) -> str:
        header = (
            "| render | direction | frames sent | frames shown | fps sent | fps shown "
            "| uplink motion kbps | uplink control kbps | uplink on the wire kbps "
            "| downlink kbps | latency p50 / p95 / p99 ms | A/V offset p50 / p95 of size ms "
            "| prompt swap ms (max) | swap stale frames (max) |"
        )
        lines = [header, "|" + "---|" * 14]
        for r in self.rows():
            latency = " / ".join(_fmt(r[f"latency_p{q}_ms"], 0) for q in (50, 95, 99))
            offset = f"{_fmt(r['av_offset_p50_ms'], 0)} / {_fmt(r['av_offset_p95_abs_ms'], 0)}"
            lines.append(
                f"| {r['render']} | {r['direction']} | {r['frames_sent']} | {r['frames_shown']} "
                f"| {r['fps_sent']:.1f} | {r['fps_shown']:.1f} | {r['uplink_motion_kbps']:.2f} "
                f"| {r['uplink_control_kbps']:.2f} | {r['uplink_wire_kbps']:.1f} "
                f"| {r['downlink_kbps']:.1f} | {latency} | {offset} "
                f"| {_fmt(r['swap_ms_max'], 0)} | {_fmt(r['swap_stale_frames_max'], 0)} |"
            )
        return "\n".join(lines)


def _rows(run: DemoRun) -> list[dict[str, Any]]:
    rows = []
    for sender, viewer in (NAMES, NAMES[::-1]):
        sent, seen = run.results[sender].summary(), run.results[viewer].summary()
        swaps = [s.latency_ms for s in run.swaps if s.sender == sender and s.latency_ms]
        stale = [
            s.stale_frames for s in run.swaps if s.sender == sender and s.stale_frames is not None
        ]
        rows.append(
            {
                "render": run.mode,
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
    inputs = dict(zip(NAMES, pick_inputs(options.data), strict=True))
    runs = []
    async with running_server(settings) as url:
        for mode in options.modes:
            run = DemoRun(mode, await _call(options, url, inputs, mode))
            run.swaps = measure_swaps(run.results)
            runs.append(run)
    report = DemoReport(options, inputs, runs)
    report.files = write_outputs(report)
    return report


async def _call(
    options: DemoOptions, url: str, inputs: dict[str, str], mode: str
) -> dict[str, CallResult]:
    """One call in render ``mode``; each participant's result by name."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{url}/rooms")
        response.raise_for_status()
        room = response.json()
    options.out.mkdir(parents=True, exist_ok=True)
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
                record=options.out / recording_name(name, mode),
                name=name,
                seed=seat,
                render_locally=mode == "local",
                mute=options.mute,
            )
        )
    clients = await asyncio.gather(*(asyncio.to_thread(CallClient, c) for c in configs))
    results = await asyncio.gather(*(c.run() for c in clients))
    return dict(zip(NAMES, results, strict=True))


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
    recordings = [run.recording(name) for run in report.runs for name in NAMES]
    return recordings + ["latency.json", "latency.png", "summary.md"]


def _origin_ms(run: DemoRun) -> float:
    return min(r.prompts[0].sent_ms for r in run.results.values() if r.prompts)


def _latency_json(report: DemoReport) -> dict[str, Any]:
    return {
        "preset": report.options.preset,
        "seconds": report.options.seconds,
        "fps": report.options.fps,
        "runs": {run.mode: _run_json(report, run) for run in report.runs},
        "rows": report.rows(),
    }


def _run_json(report: DemoReport, run: DemoRun) -> dict[str, Any]:
    origin = _origin_ms(run)
    viewers = {}
    for name, result in run.results.items():
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
        "participants": viewers,
        "swaps": [vars(s) for s in run.swaps],
        "latency_percentiles_all_ms": percentiles(
            [f.latency_ms for r in run.results.values() for f in r.shown]
        ),
    }


def plot_latency(report: DemoReport, path: Path) -> None:
    """One panel per render mode: each frame's capture -> shown latency over the call."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report.runs
    fig, axes = plt.subplots(
        len(runs), 1, figsize=(10, 3.6 * len(runs)), sharey=True, squeeze=False
    )
    colors = {"alice": "tab:blue", "bob": "tab:orange"}
    for ax, run in zip(axes[:, 0], runs, strict=True):
        origin = _origin_ms(run)
        for sender, viewer in (NAMES, NAMES[::-1]):
            frames = run.results[viewer].shown
            ax.plot(
                [(f.arrival_ms - origin) / 1000 for f in frames],
                [f.latency_ms for f in frames],
                ".",
                markersize=3,
                color=colors[sender],
                label=f"{sender} shown at {viewer}",
            )
        for swap in run.swaps:
            ax.axvline(swap.at_s, color=colors[swap.sender], linestyle="--", linewidth=1)
            ax.annotate(
                f"{swap.sender}: {swap.text}",
                (swap.at_s, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                va="top",
                ha="right",
                color=colors[swap.sender],
            )
        where = "by the server" if run.mode == RENDER_MODES[0] else "by the viewer (relay)"
        ax.set_title(f"{report.options.preset}, rendered {where} (dashed: prompt swaps)")
        ax.set_ylabel("capture -> shown (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    axes[-1, 0].set_xlabel("call time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary_markdown(report: DemoReport) -> str:
    opts = report.options
    lines = [
        "# CartoonCodec demo",
        "",
        f"Preset `{opts.preset}`, {opts.seconds:g} s at {opts.fps:g} fps capture per call, server "
        "and both participants in one process on loopback; one call per render mode (`server`: "
        "the server renders and sends video; `local`: it relays motion and each viewer renders).",
        "",
        "Inputs: " + ", ".join(f"{n}: `{report.inputs[n]}`" for n in NAMES),
        "",
        report.table(),
        "",
        "## Prompt swaps",
        "",
        "| render | sender | at (s) | prompt | shown after (ms) | stale frames |",
        "|---|---|---|---|---|---|",
    ]
    for run in report.runs:
        for swap in run.swaps:
            lines.append(
                f"| {run.mode} | {swap.sender} | {swap.at_s:.1f} | {swap.text} "
                f"| {_fmt(swap.latency_ms, 0)} | {_fmt(swap.stale_frames, 0)} |"
            )
    errors = [e for run in report.runs for r in run.results.values() for e in r.style_errors]
    if errors:
        lines += ["", "## Messages from the server", ""] + [f"- {e}" for e in errors]
    lines += [
        "",
        "Files: "
        + ", ".join(f"`{name}`" for name in report.files if name != "summary.md")
        + " (`alice.mp4`: what alice saw, bob's cartoon).",
        "",
    ]
    return "\n".join(lines)
