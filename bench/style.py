"""`cartooncodec bench style`: how fast the receiver changes style.

Two figures. Prompt swap to a cached style: `Renderer.set_style(prompt)` to the moment its future
resolves (the delta is applied between two frames), and to the first frame rendered in the new
style; the swaps cycle through the checkpoint's built-in styles, the styles adapted below and
"no style". Adaptation of a new style: `set_style` of an unseen prompt, or
`set_style_images` of style pictures (`--style-images`, one style from all of them, as
`cartooncodec style add` adapts it), to the moment it renders in that style (layer selection +
optimisation of the selected layers on a background thread), while the previous style keeps
rendering frames whose times are recorded too; the table gives the steps taken and the seconds.
Text prompts need CLIP: without `--clip-weights` a tiny randomly initialised CLIP stands in, its
timing shows the generator's share of the work, not a real CLIP's (ViT-B-32 adds its
forward/backward passes). Style pictures need no CLIP; with `--clip-weights` they also get the
CLIP image prompt (and its cost).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.report import (
    Table,
    add_bench_parser,
    add_model_arguments,
    new_figure,
    publish,
    save_figure,
)
from pipeline.meters import percentiles

if TYPE_CHECKING:
    from models import Renderer

log = logging.getLogger(__name__)

# Prompts that name or describe no built-in style (those would switch, not adapt).
DEFAULT_PROMPTS = ("a marble statue with golden eyes", "a knitted wool doll")
PICTURE_STYLE = "bench style pictures"  # the name --style-images are adapted under


@dataclass
class Swap:
    """One switch to a cached style: set_style -> active, and -> first frame in it."""

    target: str
    active_ms: float
    first_frame_ms: float


@dataclass
class Adaptation:
    """One new style: seconds until it rendered, and the frames rendered meanwhile."""

    prompt: str
    seconds: float
    frame_ms: list[float] = field(default_factory=list)
    frame_times_s: list[float] = field(default_factory=list)
    kind: str = "text prompt"  # or "style pictures"
    steps: int = 0  # optimisation steps (after the probe steps of layer selection)
    probe_steps: int = 0


def talking_frames(source: str, size: int, count: int) -> np.ndarray:
    """``count`` face crops from a call input ('synthetic', a video or an image)."""
    from client.capture import open_source
    from models.face_crop import FaceTracker

    stream = open_source(source, fps=25.0)
    tracker = FaceTracker(size)
    try:
        return np.stack([tracker.crop(stream.read()) for _ in range(count)])
    finally:
        stream.close()


def measure_swaps(
    renderer: Renderer, features: np.ndarray, targets: list[str | None], repeats: int
) -> list[Swap]:
    """Cycle ``repeats`` times through ``targets`` (None = no style), rendering in between."""
    swaps = []
    for index in range(repeats * len(targets)):
        target = targets[index % len(targets)]
        renderer.render(features[index % len(features)])
        start = time.perf_counter()
        renderer.set_style(target).result()
        active = time.perf_counter()
        renderer.render(features[(index + 1) % len(features)])
        done = time.perf_counter()
        swaps.append(Swap(target or "none", (active - start) * 1e3, (done - start) * 1e3))
    return swaps


def measure_adaptation(renderer: Renderer, features: np.ndarray, prompt: str) -> Adaptation:
    """Adapt ``prompt`` in the background while frames keep rendering at full speed.

    ValueError when ``prompt`` selects a built-in or cached style: nothing would be adapted.
    """
    if renderer.known_style(prompt) is not None:
        raise ValueError(
            f"prompt {prompt!r} selects a built-in or already adapted style, so it times a "
            f"swap, not an adaptation; built-in styles: {', '.join(renderer.style_names())}"
        )
    return _timed(renderer, features, prompt, "text prompt", lambda: renderer.set_style(prompt))


def measure_picture_adaptation(
    renderer: Renderer, features: np.ndarray, images: list[np.ndarray], name: str
) -> Adaptation:
    """Adapt a style named ``name`` to ``images`` (style pictures, HxWx3 uint8 RGB, cut around
    their faces) afresh, even when cached, while frames keep rendering."""
    from models.face_crop import FaceCropper

    cropper = FaceCropper()
    return _timed(
        renderer,
        features,
        name,
        "style pictures",
        lambda: renderer.set_style_images(images, name, cropper, reuse_cached=False),
    )


def _timed(
    renderer: Renderer,
    features: np.ndarray,
    label: str,
    kind: str,
    start_style: Callable[[], Future[str]],
) -> Adaptation:
    config = renderer.adaptation
    result = Adaptation(label, 0.0, kind=kind, steps=config.steps, probe_steps=config.probe_steps)
    start = time.perf_counter()
    future = start_style()
    index = 0
    while not future.done():
        frame_start = time.perf_counter()
        renderer.render(features[index % len(features)])
        result.frame_ms.append((time.perf_counter() - frame_start) * 1e3)
        result.frame_times_s.append(frame_start - start)
        index += 1
    future.result()  # raises what adaptation raised
    result.seconds = time.perf_counter() - start
    return result


def build_renderer(args: argparse.Namespace) -> Renderer:
    from models import Renderer
    from models.layer_selection import AdaptationConfig
    from models.text_encoder import tiny_clip

    adaptation = AdaptationConfig(steps=args.adapt_steps)
    if args.clip_weights is not None:
        return Renderer(
            args.preset,
            args.checkpoint,
            clip_weights=args.clip_weights,
            clip_model=args.clip_model,
            adaptation=adaptation,
        )
    # the tiny CLIP only for text prompts: style pictures are then timed as without CLIP
    clip = tiny_clip() if args.prompts else None
    return Renderer(args.preset, args.checkpoint, clip=clip, adaptation=adaptation)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from models.style_images import read_style_image, style_image_paths

    paths = style_image_paths(args.style_images) if args.style_images else []
    pictures = [read_style_image(path) for path in paths]
    renderer = build_renderer(args)
    try:
        frames = talking_frames(args.input, renderer.size, args.frames)
        renderer.set_reference(frames[0])
        features = np.stack([renderer.extractor.extract(f) for f in frames])
        adaptations = [
            measure_adaptation(renderer, features, prompt)
            for prompt in tqdm(args.prompts, desc="adapting new prompts", unit="prompt")
        ]
        if pictures:
            adaptations.append(
                measure_picture_adaptation(renderer, features, pictures, PICTURE_STYLE)
            )
        adapted = [a.prompt for a in adaptations]
        targets: list[str | None] = [*renderer.style_names(), *adapted, None]
        swaps = measure_swaps(renderer, features, targets, args.repeats)
    finally:
        renderer.close()
    clip_name = str(args.clip_weights) if args.clip_weights else "tiny random CLIP"
    tables = [swap_table(swaps), adaptation_table(adaptations, clip_name)]
    plot = plot_style(swaps, adaptations, args.out / "style.png")
    details = {
        "swaps": [vars(s) for s in swaps],
        "adaptations": [vars(a) for a in adaptations],
        "size": renderer.size,
        "built_in_styles": renderer.style_names(),
    }
    publish(args.out, "style", tables, args, details=details, plots=[plot])
    return 0


def swap_table(swaps: list[Swap]) -> Table:
    table = Table(
        "swap",
        "Prompt swap to a cached style (ms): set_style -> active, and -> first frame in it",
        ("target", "swaps", "active_p50", "active_p95", "first_frame_p50", "first_frame_p95"),
    )
    for target in dict.fromkeys(s.target for s in swaps):
        mine = [s for s in swaps if s.target == target]
        active_p50, active_p95 = percentiles([s.active_ms for s in mine], (50, 95))
        first_p50, first_p95 = percentiles([s.first_frame_ms for s in mine], (50, 95))
        table.add(
            target=target,
            swaps=len(mine),
            active_p50=active_p50,
            active_p95=active_p95,
            first_frame_p50=first_p50,
            first_frame_p95=first_p95,
        )
    return table


def adaptation_table(adaptations: list[Adaptation], clip_name: str) -> Table:
    table = Table(
        "adapt",
        f"New style adaptation while rendering continues (text prompts: {clip_name})",
        (
            "prompt",
            "kind",
            "probe_steps",
            "steps",
            "seconds",
            "frames_meanwhile",
            "render_ms_p50",
            "render_ms_p95",
        ),
    )
    for item in adaptations:
        render_p50, render_p95 = percentiles(item.frame_ms, (50, 95))
        table.add(
            prompt=item.prompt,
            kind=item.kind,
            probe_steps=item.probe_steps,
            steps=item.steps,
            seconds=item.seconds,
            frames_meanwhile=len(item.frame_ms),
            render_ms_p50=render_p50,
            render_ms_p95=render_p95,
        )
    return table


def plot_style(swaps: list[Swap], adaptations: list[Adaptation], path: Path) -> Path:
    fig, (left, right) = new_figure(ncols=2)
    targets = list(dict.fromkeys(s.target for s in swaps))
    left.boxplot([[s.first_frame_ms for s in swaps if s.target == t] for t in targets])
    left.set_xticks(range(1, len(targets) + 1), [t[:18] for t in targets], rotation=30)
    left.set_ylabel("swap -> first styled frame (ms)")
    left.set_title("swap to a cached style")
    for item in adaptations:
        right.plot(item.frame_times_s, item.frame_ms, ".", label=f"{item.prompt[:30]}")
        right.axvline(item.seconds, linestyle="--", color="grey")
    right.set_xlabel("seconds since set_style (dashed: new style active)")
    right.set_ylabel("render ms per frame")
    right.set_title("frames rendered while adapting")
    if adaptations:
        right.legend(fontsize="small")
    return save_figure(fig, path)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_bench_parser(
        subparsers,
        "style",
        "prompt swap latency (cached styles) and adaptation time of a new prompt",
        __doc__,
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--input",
        default="synthetic",
        help="frames to render: 'synthetic' (talking portrait), a video or an image file",
    )
    parser.add_argument("--frames", type=int, default=25, help="frames of motion to cycle")
    parser.add_argument(
        "--prompts",
        nargs="*",
        default=list(DEFAULT_PROMPTS),
        help="new prompts to adapt (none: only time swaps between built-in styles)",
    )
    parser.add_argument(
        "--style-images",
        nargs="+",
        metavar="PATH",
        help="style pictures (files and/or folders): time adapting one style to them",
    )
    parser.add_argument("--adapt-steps", type=int, default=40, help="optimisation steps per style")
    parser.add_argument("--repeats", type=int, default=10, help="swaps to each cached style")
    parser.add_argument("--clip-weights", help="CLIP weights file or open_clip tag")
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name")
    parser.set_defaults(func=run)
