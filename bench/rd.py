"""`cartooncodec bench rd`: rate–quality of this codec against x264 and x265 on face clips.

Per clip, at the preset's resolution and 25 fps, every codec codes the same frames: x264 and
x265 in low-delay settings over a QP sweep (see `bench.conventional`), this codec at several
rate levels and key frame qualities, measured as `bench.ourcodec` defines it (coded key frame as
the reference; key frame and every packet, headers included, in the rate), with its baselines
(static key frame, zero-motion self-reconstruction, x265 at its lowest rate) as points of their
own. Output: per-clip and mean (over clips) rate–quality curves (PSNR, SSIM, MS-SSIM; see
`bench.metrics`), BD-rate against x264 and x265, and the "lowest x264 rate" check: the rate
this codec needs for the MS-SSIM x264 reaches at its lowest rate.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench.bjontegaard import bd_rate, lowest_rate_reaching, rate_at_quality
from bench.clips import load_bench_clips
from bench.conventional import DEFAULT_QPS, check_qps, measure_conventional
from bench.metrics import MEAN, RatePoint, mean_points
from bench.ourcodec import BASELINES, OURS, OfflineCodec, Setting, measure_clip
from bench.report import (
    Table,
    add_bench_parser,
    add_model_arguments,
    new_figure,
    publish,
    save_figure,
)
from models.config import get_preset

log = logging.getLogger(__name__)

METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM"}
CONVENTIONAL = ("x264", "x265")


def curve(points: Iterable[RatePoint], codec: str, metric: str) -> list[tuple[float, float]]:
    return [(p.kbps, p.quality(metric)) for p in points if p.codec == codec and p.kbps is not None]


def comparisons(codecs: Sequence[str]) -> list[tuple[str, str]]:
    """(anchor, codec) pairs: each codec against every conventional codec listed before it."""
    ordered = sorted(codecs, key=lambda c: CONVENTIONAL.index(c) if c in CONVENTIONAL else 9)
    return [
        (anchor, codec)
        for i, anchor in enumerate(ordered)
        if anchor in CONVENTIONAL
        for codec in ordered[i + 1 :]
    ]


def bd_table(points_by_clip: dict[str, list[RatePoint]], codecs: Sequence[str]) -> Table:
    """BD-rate of each codec against each conventional anchor, per clip and on the mean curve."""
    table = Table(
        "bd",
        "BD-rate (% rate change at equal quality; negative = fewer bits; – = no common range)",
        ("clip", "codec", "anchor", *METRIC_LABELS),
    )
    for clip, points in points_by_clip.items():
        for anchor, codec in comparisons(codecs):
            row = {
                metric: bd_rate(curve(points, anchor, metric), curve(points, codec, metric))
                for metric in METRIC_LABELS
            }
            table.add(clip=clip, codec=codec, anchor=anchor, **row)
    return table


def lowest_rate_table(points_by_clip: dict[str, list[RatePoint]], codecs: Sequence[str]) -> Table:
    """For each anchor's lowest-rate point: what every other codec needs for its MS-SSIM."""
    table = Table(
        "lowest_rate",
        "Lowest measured rate reaching the MS-SSIM each anchor has at its lowest rate "
        "(– = never reached)",
        ("clip", "anchor", "anchor_kbps", "anchor_ms_ssim", "codec", "codec_kbps", "ratio"),
    )
    for clip, points in points_by_clip.items():
        for anchor, codec in comparisons(codecs):
            lowest_kbps, lowest_ms_ssim = min(curve(points, anchor, "ms_ssim"))
            needed = lowest_rate_reaching(curve(points, codec, "ms_ssim"), lowest_ms_ssim)
            table.add(
                clip=clip,
                anchor=anchor,
                anchor_kbps=lowest_kbps,
                anchor_ms_ssim=lowest_ms_ssim,
                codec=codec,
                codec_kbps=needed,
                ratio=None if needed is None else needed / lowest_kbps,
            )
    return table


def equal_quality_table(points_by_clip: dict[str, list[RatePoint]], codecs: Sequence[str]) -> Table:
    """Each point of a codec against the rate the anchor needs for the same MS-SSIM."""
    table = Table(
        "equal_quality",
        "Rate at equal MS-SSIM (anchor interpolated on its curve; – = outside its range)",
        ("clip", "codec", "setting", "ms_ssim", "kbps", "anchor", "anchor_kbps", "ratio"),
    )
    for clip, points in points_by_clip.items():
        for anchor, codec in comparisons(codecs):
            anchor_curve = curve(points, anchor, "ms_ssim")
            rated = [(p.kbps, p) for p in points if p.codec == codec and p.kbps is not None]
            for kbps, point in sorted(rated, key=lambda pair: pair[0]):
                needed = rate_at_quality(anchor_curve, point.ms_ssim)
                table.add(
                    clip=clip,
                    codec=codec,
                    setting=point.setting,
                    ms_ssim=point.ms_ssim,
                    kbps=kbps,
                    anchor=anchor,
                    anchor_kbps=needed,
                    ratio=None if needed is None else kbps / needed,
                )
    return table


def plot_curves(points: Sequence[RatePoint], codecs: Sequence[str], title: str, path: Path) -> Path:
    from matplotlib import ticker

    fig, axes = new_figure(ncols=len(METRIC_LABELS), width=4.5, height=3.8)
    for axis, (metric, label) in zip(axes, METRIC_LABELS.items(), strict=True):
        for codec in codecs:
            xy = sorted(curve(points, codec, metric))
            if xy:
                axis.plot(*zip(*xy, strict=True), marker="o", label=codec)
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel("rate (kbps, log scale)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    qps = check_qps(args.qps)
    size = args.size or preset_size(args.preset)
    clips = load_bench_clips(args.clips, size, max_frames=args.frames, crop=args.crop)
    conventional = [c for c in args.codecs if c in CONVENTIONAL]
    ours = OursSweep(args) if OURS in args.codecs else None
    jobs: list[tuple[str, np.ndarray, str, int]] = [
        (name, frames, codec, qp) for name, frames in clips for codec in conventional for qp in qps
    ]
    if ours is not None:
        jobs += [(name, frames, OURS, 0) for name, frames in clips]
    points: list[RatePoint] = []
    try:
        for name, frames, codec, qp in tqdm(jobs, desc="bench rd", unit="run"):
            if codec == OURS and ours is not None:
                points += ours.measure(name, frames)
            else:
                points.append(measure_conventional(name, frames, codec, qp, args.x26x_preset))
    finally:
        if ours is not None:
            ours.codec.close()
    points_by_clip: dict[str, list[RatePoint]] = defaultdict(list)
    for point in points:
        points_by_clip[point.clip].append(point)
    points_by_clip[MEAN] = mean_points(points)
    extra_tables = [] if ours is None else [ours.table]
    codecs = [*conventional, *(ours.codecs if ours else [])]
    return write_results(
        args, points_by_clip, codecs, size, {n: len(f) for n, f in clips}, extra_tables
    )


class OursSweep:
    """This codec over every (rate level, key frame quality) and its baselines, clip by clip.

    Each key frame quality is its own curve (`ours-kq<Q>`) whose points are the rate levels;
    the baselines (`bench.ourcodec.BASELINES`) are points of their own, outside the curves.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.codec = OfflineCodec(preset=args.preset, checkpoint=args.checkpoint)
        self.x26x_preset = args.x26x_preset
        self.settings = [
            Setting(level=lv, keyframe_quality=q)
            for q in args.keyframe_qualities
            for lv in sorted(args.levels)
        ]
        self.codecs = list(dict.fromkeys(s.codec for s in self.settings))
        self.table = Table(
            "ours",
            "This codec: what its rate is made of (kbps = key frame + payload + headers)",
            ("clip", "codec", "setting", "keyframe_bytes", "payload_kbps", "header_kbps", "kbps"),
        )

    def measure(self, clip: str, frames: np.ndarray) -> list[RatePoint]:
        """Points of every setting and of the baselines, through `bench.ourcodec.measure_clip`."""
        measured = measure_clip(
            self.codec, clip, frames, self.settings, x26x_preset=self.x26x_preset
        )
        for coded in measured.coded:
            self.table.add(
                clip=clip,
                codec=coded.setting.codec,
                setting=coded.setting.label,
                keyframe_bytes=coded.keyframe_bytes,
                payload_kbps=coded.kbps(coded.payload_bytes),
                header_kbps=coded.kbps(coded.header_bytes),
                kbps=coded.kbps(coded.sent_bytes),
            )
        return measured.points


def write_results(
    args: argparse.Namespace,
    points_by_clip: dict[str, list[RatePoint]],
    codecs: Sequence[str],
    size: int,
    frame_counts: dict[str, int],
    extra_tables: Sequence[Table],
) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    points_table = Table(
        "points",
        f"Rate and mean frame quality at {size}x{size}, 25 fps",
        ("clip", "codec", "setting", "kbps", *METRIC_LABELS),
    )
    plots = []
    for clip, points in points_by_clip.items():
        for point in sorted(points, key=lambda p: (p.codec in BASELINES, p.codec, p.kbps or 0)):
            points_table.rows.append(asdict(point))
        title = f"{clip} ({size}x{size}, 25 fps)" if clip != MEAN else "mean over clips"
        plots.append(plot_curves(points, codecs, title, args.out / f"rd_{clip}.png"))
    tables = [
        points_table,
        bd_table(points_by_clip, codecs),
        lowest_rate_table(points_by_clip, codecs),
        equal_quality_table(points_by_clip, codecs),
        *extra_tables,
    ]
    details = {"size": size, "fps": 25, "frames": frame_counts}
    publish(args.out, "rd", tables, args, details=details, plots=plots)
    return 0


def preset_size(preset: str) -> int:

    return int(get_preset(preset).image_size)


def register(subparsers: argparse._SubParsersAction) -> None:

    parser = add_bench_parser(
        subparsers,
        "rd",
        "rate–quality against x264 and x265 (PSNR, SSIM, MS-SSIM, BD-rate)",
        __doc__,
    )
    parser.add_argument("--clips", type=Path, required=True, help="folder of face videos")
    add_model_arguments(parser)  # the preset also sets the resolution
    parser.add_argument("--size", type=int, help="frame side in pixels (default: the preset's)")
    parser.add_argument("--frames", type=int, help="use only the first N frames of each clip")
    parser.add_argument(
        "--crop",
        choices=("face", "center"),
        default="face",
        help="square crop around the detected face (default) or the centre of the frame",
    )
    parser.add_argument(
        "--codecs",
        nargs="+",
        choices=(*CONVENTIONAL, OURS),
        default=[*CONVENTIONAL, OURS],
        help="codecs to measure (default all)",
    )
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=[0, 4, 8, 12, 16],
        help="this codec's rate levels; +4 doubles the quantization step (default 0 4 8 12 16)",
    )
    parser.add_argument(
        "--keyframe-qualities",
        type=int,
        nargs="+",
        default=[20, 50],
        help="key frame qualities 0..100, one curve each (default 20 50)",
    )
    parser.add_argument(
        "--qps",
        type=int,
        nargs="+",
        default=list(DEFAULT_QPS),
        help="x264/x265 constant QPs (51 = the lowest rate they reach)",
    )
    parser.add_argument(
        "--x26x-preset", default="medium", help="x264/x265 speed preset (default medium)"
    )
    parser.set_defaults(func=run)
