"""`cartooncodec bench speed`: how fast the models run on this machine.

Per preset: motion extraction, feature coding and decoding (codec, default setting) and
rendering in ms per frame (and fps), switching to a cached
style delta (the raw parameter swap, and ``set_style`` until the style is live), and the
seconds a new prompt takes to adapt with CLIP (a tiny random CLIP unless ``--clip-weights``
is given: then the figure is for the real encoder). CPU runs use 2 torch threads unless told
otherwise, the budget the product targets.

The pieces (:func:`build_inputs`, :func:`bench.timing.time_calls`, ``measure_*``) are small
so that other comparisons can reuse them and add a table, as the unified-versus-cascade one does
(:mod:`bench.cascade`: styled generator in one pass against a plain reconstruction followed by
a separate stylisation pass).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.cascade import cascade, classical_stylizer, cnn_stylizer, unified
from bench.report import Table, add_bench_parser, add_model_arguments, publish
from bench.timing import WARMUP_CALLS, Timing, call_times, time_calls
from codec.motiondecoder import MotionDecoder
from codec.motionencoder import MotionEncoder
from codec.schema import FeatureSchema, model_schema
from models.checkpoint_option import RANDOM_WEIGHTS  # --clip-weights random: the same word
from models.config import get_preset

if TYPE_CHECKING:
    from models.extractor import MotionExtractor
    from models.renderer import Renderer

log = logging.getLogger(__name__)

DEFAULT_FRAMES = {"full-256": 10, "lite-128": 200, "tiny": 50}
DEFAULT_THREADS = 2
# Matches no built-in style, so set_style has to adapt it with CLIP.
NEW_PROMPT = "a neon cyberpunk portrait"
VERSUS_ROUNDS = 5


def build_inputs(size: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` size x size RGB frames of a bright blob drifting over a smooth background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    background = np.stack([x, y, 1 - x], axis=-1) * 0.6 + 0.2
    frames = []
    for index in range(count):
        cx, cy = 0.5 + 0.1 * np.sin(index / 7), 0.45 + 0.05 * np.cos(index / 5)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.03)[..., None]
        noise = rng.normal(0, 0.01, (size, size, 3))
        frame = np.clip(background * (1 - blob) + blob * 0.9 + noise, 0, 1)
        frames.append((frame * 255).astype(np.uint8))
    return frames


def measure_extraction(extractor: MotionExtractor, frames: Sequence[np.ndarray]) -> Timing:
    return time_calls(extractor.extract, frames)


def measure_rendering(renderer: Renderer, features: Sequence[np.ndarray]) -> Timing:
    return time_calls(renderer.render, features)


def measure_adaptation(renderer: Renderer, prompt: str = NEW_PROMPT) -> float:
    """Seconds from ``set_style(prompt)`` to the adapted style being live."""
    start = time.perf_counter()
    renderer.set_style(prompt).result()
    return time.perf_counter() - start


def measure_swaps(renderer: Renderer, prompt: str, count: int) -> tuple[Timing, Timing]:
    """(parameter swap only, ``set_style`` of a cached prompt until live), each per switch.

    Alternates between ``prompt`` (already cached) and no style.
    """
    from models.style_delta import StyleSwitch

    delta = renderer.known_style(prompt)
    if delta is None:
        raise ValueError(f"style {prompt!r} is not cached; adapt it first")
    renderer.set_style(None).result()  # the switch below must start from the base weights
    switch = StyleSwitch(renderer.generator)
    targets = [delta if i % 2 == 0 else None for i in range(count)]
    parameter_swap = time_calls(switch.apply, targets)
    switch.apply(None)
    prompts = [prompt if i % 2 == 0 else None for i in range(count)]
    set_style = time_calls(lambda p: renderer.set_style(p).result(), prompts)
    return parameter_swap, set_style


def measure_versus(
    renderers: dict[str, Renderer], features: Sequence[np.ndarray], rounds: int = VERSUS_ROUNDS
) -> dict[str, Timing]:
    """Render ``features`` with each renderer in turn, ``rounds`` times: on a noisy machine the
    renderers see the same load, so their ratio holds where single runs disagree."""
    times: dict[str, list[float]] = {name: [] for name in renderers}
    for _ in range(rounds):
        for name, renderer in renderers.items():
            times[name] += call_times(renderer.render, features)
    return {name: Timing.of(values) for name, values in times.items()}


def measure_coding(features: Sequence[np.ndarray], schema: FeatureSchema) -> tuple[Timing, Timing]:
    """(encode, decode) per motion packet with the codec's default setting, in order."""
    encoder, decoder = MotionEncoder(schema), MotionDecoder(schema)
    packets: list[bytes] = []

    def encode(vector: np.ndarray) -> None:
        packets.append(encoder.encode(vector, capture_time_ms=40 * len(packets)))

    coding = time_calls(encode, features, warmup=0)
    # No warm-up: a packet decoded twice is a duplicate, which the decoder drops early.
    return coding, time_calls(decoder.decode, packets, warmup=0)


def measure_cascade(
    renderer: Renderer, features: Sequence[np.ndarray], style: str
) -> dict[str, Timing]:
    """Unified (style inside the generator) against render-then-stylise cascades.

    ``style`` is a built-in style of the checkpoint; without one, the adapted NEW_PROMPT
    delta stands in on the unified side (same cost: a delta changes weights, not shapes).
    """

    delta_style = style if style in renderer.style_names() else NEW_PROMPT
    return {
        f"unified: render with style {delta_style!r}": unified(renderer, features, delta_style),
        f"cascade: render + classical {style!r}": cascade(
            renderer, features, classical_stylizer(style)
        ),
        "cascade: render + CNN styliser": cascade(renderer, features, cnn_stylizer(renderer)),
    }


def run_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Build the models as asked and take every measurement; returns the raw results."""
    import torch

    from models.extractor import MotionExtractor
    from models.frames import resolve_device
    from models.layer_selection import AdaptationConfig
    from models.renderer import Renderer
    from models.text_encoder import load_clip, random_clip, tiny_clip

    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    frames = build_inputs(_preset_size(args.preset), args.frames)
    extractor = MotionExtractor(args.preset, args.checkpoint, device)
    if args.clip_weights is None:
        clip = tiny_clip(device=device)
    elif args.clip_weights == RANDOM_WEIGHTS:
        clip = random_clip(args.clip_model, device=device)
    else:
        clip = load_clip(args.clip_weights, args.clip_model, device)
    renderer = Renderer(
        args.preset,
        device=device,
        models=extractor.models,
        clip=clip,
        adaptation=AdaptationConfig(steps=max(args.adapt_steps, 1)),
        half=None if args.half else False,
        compile=args.compile,
    )
    try:
        renderer.set_reference(frames[0])
        extraction = measure_extraction(extractor, frames)
        features = [extractor.extract(frame) for frame in frames]
        rendering = measure_rendering(renderer, features)
        coding, decoding = measure_coding(features, model_schema(extractor.config))
        results: dict[str, Any] = {
            "extract": extraction,
            "code": coding,
            "decode": decoding,
            "render": rendering,
        }
        if args.adapt_steps > 0:
            results["adapt_s"] = measure_adaptation(renderer)
            delta = renderer.known_style(NEW_PROMPT)
            assert delta is not None  # adaptation just cached it
            results["delta"] = {"layers": list(delta.layers), "bytes": delta.num_bytes}
            results["swap"], results["set_style"] = measure_swaps(renderer, NEW_PROMPT, 20)
        if args.adapt_steps > 0 or args.cascade_style in renderer.style_names():
            results["cascade"] = measure_cascade(renderer, features, args.cascade_style)
        if args.versus is not None:
            this = str(extractor.models.path or "random init")
            results["versus"] = _versus(renderer, this, args.versus, frames[0], features)
        results["setup"] = {
            "preset": args.preset,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "frames": args.frames,
            "dtype": str(renderer.dtype),
            "clip": _clip_description(args),
            "adapt_steps": args.adapt_steps,
            "checkpoint": str(extractor.models.path) if extractor.models.path else "random init",
        }
        return results
    finally:
        renderer.close()


def speed_table(results: dict[str, Any]) -> Table:
    setup = results["setup"]
    table = Table(
        "speed",
        f"Speed of {setup['preset']} on {setup['device']} ({setup['threads']} threads)",
        ["measure", "mean ms", "p50 ms", "p95 ms", "per second"],
    )
    rows = [
        ("extract (frame -> features)", "extract"),
        ("code (features -> packet)", "code"),
        ("decode (packet -> features)", "decode"),
        ("render (features -> frame)", "render"),
    ]
    rows += [("style swap (parameters)", "swap"), ("set_style, cached prompt", "set_style")]
    for label, key in rows:
        if key in results:
            timing = results[key]
            table.add(
                measure=label,
                **{"mean ms": timing.mean_ms, "p50 ms": timing.p50_ms, "p95 ms": timing.p95_ms},
                **{"per second": timing.fps},
            )
    if "adapt_s" in results:
        seconds = results["adapt_s"] * 1000.0
        table.add(
            measure=f"adapt a new prompt ({setup['adapt_steps']} steps, {setup['clip']})",
            **{"mean ms": seconds, "p50 ms": None, "p95 ms": None, "per second": None},
        )
    return table


def cascade_table(results: dict[str, Any]) -> Table:
    """Unified against cascaded stylisation, per frame at the receiver."""
    setup = results["setup"]
    table = Table(
        "cascade",
        f"Unified vs cascaded stylisation, {setup['preset']} on {setup['device']} "
        f"({setup['threads']} threads)",
        ["path", "mean ms", "p50 ms", "p95 ms", "per second", "x unified time"],
    )
    timings = results["cascade"]
    unified_ms = next(iter(timings.values())).mean_ms
    for label, timing in timings.items():
        table.add(
            path=label,
            **{"mean ms": timing.mean_ms, "p50 ms": timing.p50_ms, "p95 ms": timing.p95_ms},
            **{"per second": timing.fps, "x unified time": timing.mean_ms / unified_ms},
        )
    return table


def run(args: argparse.Namespace) -> int:
    import models  # noqa: F401  (before torch loads: it sets OMP_WAIT_POLICY, see there)

    if args.frames is None:
        args.frames = DEFAULT_FRAMES.get(args.preset, 50)
    if args.frames <= WARMUP_CALLS:
        raise SystemExit(f"--frames must be above {WARMUP_CALLS} (the untimed warm-up calls)")
    results = run_speed(args)
    details = {
        "setup": results["setup"],
        "timings": {k: asdict(v) for k, v in results.items() if isinstance(v, Timing)},
        "adapt_s": results.get("adapt_s"),
        "style_delta": results.get("delta"),
        "cascade": {k: asdict(v) for k, v in results.get("cascade", {}).items()},
        "versus": {k: asdict(v) for k, v in results.get("versus", {}).items()},
    }
    tables = [speed_table(results)]
    if "cascade" in results:
        tables.append(cascade_table(results))
    if "versus" in results:
        tables.append(versus_table(results))
    json_path = publish(args.out, f"speed-{args.preset}", tables, args, details)
    if args.json is not None and args.json.resolve() != json_path.resolve():
        args.json.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(json_path, args.json)
    return 0


def _versus(
    renderer: Renderer,
    this: str,
    checkpoint: Path,
    reference: np.ndarray,
    features: Sequence[np.ndarray],
) -> dict[str, Timing]:
    """``renderer`` (named ``this``) against ``checkpoint``, loaded with its own config on
    the same device and dtype, interleaved."""
    import torch

    from models.checkpoint import load_checkpoint
    from models.renderer import Renderer

    models = load_checkpoint(checkpoint, device=renderer.device)
    half = renderer.dtype == torch.float16
    other = Renderer(models.config.name, device=renderer.device, models=models, half=half)
    try:
        other.set_reference(reference)
        for vector in features[:WARMUP_CALLS]:
            other.render(vector)
        return measure_versus({this: renderer, str(checkpoint): other}, features)
    finally:
        other.close()


def versus_table(results: dict[str, Any]) -> Table:
    """Rendering with two checkpoints, interleaved in rounds."""
    setup = results["setup"]
    table = Table(
        "versus",
        f"Rendering, two checkpoints interleaved ({VERSUS_ROUNDS} rounds), {setup['preset']} "
        f"on {setup['device']} ({setup['threads']} threads)",
        ["checkpoint", "mean ms", "p50 ms", "p95 ms", "per second"],
    )
    for label, timing in results["versus"].items():
        table.add(
            checkpoint=label,
            **{"mean ms": timing.mean_ms, "p50 ms": timing.p50_ms, "p95 ms": timing.p95_ms},
            **{"per second": timing.fps},
        )
    return table


def _clip_description(args: argparse.Namespace) -> str:
    if args.clip_weights is None:
        return "tiny random CLIP"
    if args.clip_weights == RANDOM_WEIGHTS:
        return f"random-weight {args.clip_model}"
    return f"{args.clip_model} {args.clip_weights}"


def _preset_size(preset: str) -> int:

    return get_preset(preset).image_size


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = add_bench_parser(
        bench_subparsers,
        "speed",
        "ms per frame for motion extraction and rendering, style swap and adaptation",
        "Time the models of one preset: extraction, feature coding and decoding, rendering "
        "ms/frame and fps, switching to a cached style, adapting a new prompt with CLIP, and "
        "unified against cascaded stylisation. Example: "
        "cartooncodec bench speed --preset lite-128 --threads 2",
    )
    add_model_arguments(parser)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch threads on CPU (default {DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--frames", type=int, default=None, help="frames to time (default: by preset)"
    )
    parser.add_argument(
        "--clip-weights",
        default=None,
        help="CLIP weights file or open_clip tag for the adaptation figure; 'random': the "
        "--clip-model architecture with random weights (real cost, no download); "
        "default: a tiny random CLIP, which times the generator side only",
    )
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name")
    parser.add_argument(
        "--adapt-steps",
        type=int,
        default=40,
        help="optimisation steps when adapting the new prompt (0 skips adaptation and swaps)",
    )
    parser.add_argument(
        "--cascade-style",
        default="cel",
        help="built-in style of the unified-vs-cascade comparison (default cel)",
    )
    parser.add_argument("--no-half", dest="half", action="store_false", help="keep float32 on CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the decoder")
    parser.add_argument(
        "--versus",
        type=Path,
        metavar="CHECKPOINT",
        help="also render with this checkpoint (e.g. the previous one, any sizes), interleaved "
        f"with the main one over {VERSUS_ROUNDS} rounds: a side-by-side figure on a noisy machine",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.set_defaults(func=run)
