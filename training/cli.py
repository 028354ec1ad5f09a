"""`cartooncodec train` and `cartooncodec eval`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Any

from codec.keyframe import DEFAULT_QUALITY
from codec.ratecontrol import DEFAULT_TARGET_KBPS, parse_target_kbps
from models.checkpoint_option import add_checkpoint_arguments
from training.options import TrainOptions

log = logging.getLogger(__name__)

TRAIN_EPILOG = """\
examples:
  cartooncodec train --data ../shared/data/train --out runs/lite --preset lite-128 --max-minutes 40
  cartooncodec train --data DIR --out runs/lite --resume runs/lite/checkpoint.pt --steps 200000
  torchrun --nproc_per_node 8 -m cartooncodec train --data DIR --out runs/full --preset full-256
  cartooncodec train --data DIR --out runs/styled --resume runs/lite/best.pt --steps STEP \
      --styles disney-princess,pixar,sketch,zombie,anime-painting,cel,comic,watercolor,pop-art \
      --style-data ../shared/data/styles   (stage 2 only: STEP = the checkpoint's step)

Writes to --out: checkpoint.pt (resumable), best.pt (best validation MS-SSIM; stage 2 and
--export start from it), losses.csv, losses.png, samples/step-*.png (source | driving |
reconstruction | each style). Validation holds out whole people (--validation-fraction).
Decoded face crops are cached under --cache-dir (default OUT/cache) so later epochs and runs
skip video decoding.
"""

EVAL_EPILOG = """\
Same-identity reconstruction through the real codec, as `bench rd` measures it: the coded first
frame of each clip is the receiver's reference, every frame is rendered from its coded motion
features. Reports PSNR, SSIM and MS-SSIM per clip and as the mean over clips, and the rate (key
frame + every packet, headers included), next to three baselines: static (the decoded key frame
shown throughout), zero-motion (each frame rendered from itself: the generator's sharpness) and
x265 at its lowest rate.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_train(subparsers)
    _register_eval(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the motion extractor and generator on a folder of face videos",
        description="Stage 1: self-supervised reconstruction on (source, driving) pairs of "
        "the same clip. Stage 2: one style delta per built-in style (adaptive layer "
        "selection). Same command on CPU, one GPU, or many GPUs under torchrun.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_options(parser, TrainOptions)
    parser.set_defaults(func=_train)


def add_dataclass_options(
    parser: argparse.ArgumentParser, cls: type[Any], prefix: str = ""
) -> None:
    """One option per field of the dataclass ``cls``: ``--field-name`` (or the field's
    ``flag``), typed by the annotation, defaulting to the field's default, with its ``help``.
    A field without a default is required; a bool that defaults to true becomes ``--no-NAME``;
    a tuple of strings is comma-separated; a dataclass field adds its own fields, prefixed."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        kind, dest = hints[item.name], prefix + item.name
        if dataclasses.is_dataclass(kind):
            add_dataclass_options(parser, typing.cast(type, kind), prefix=f"{dest}_")
            continue
        flag = item.metadata.get("flag", "--" + dest.replace("_", "-"))
        help_text = item.metadata.get("help", "")
        if kind is bool:
            if item.default:
                flag = "--no-" + flag.removeprefix("--")
                help_text = f"without {help_text} (default: with)"
            action = "store_false" if item.default else "store_true"
            parser.add_argument(flag, dest=dest, action=action, help=help_text)
            continue
        required = item.default is dataclasses.MISSING
        default = None if required else item.default
        if default is not None:
            shown = ",".join(default) if isinstance(default, tuple) else default
            help_text = f"{help_text} (default {shown})"
        parser.add_argument(
            flag,
            dest=dest,
            type=_parser_of(kind),
            default=default,
            required=required,
            help=help_text,
        )


def dataclass_from_options(cls: type[Any], args: argparse.Namespace, prefix: str = "") -> Any:
    """The ``cls`` instance the options of :func:`add_dataclass_options` were parsed into."""
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        kind, dest = hints[item.name], prefix + item.name
        if dataclasses.is_dataclass(kind):
            values[item.name] = dataclass_from_options(typing.cast(type, kind), args, f"{dest}_")
        else:
            values[item.name] = getattr(args, dest)
    return cls(**values)


def _parser_of(kind: Any) -> Any:
    """The argparse ``type`` of an annotation: X | None parses as X; tuple[str, ...] as a
    comma-separated list."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if typing.get_origin(kind) is tuple:
        return lambda text: tuple(name.strip() for name in text.split(",") if name.strip())
    return kind


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure reconstruction quality and motion kbps through the real codec",
        description=EVAL_EPILOG,
    )
    parser.add_argument("--clips", type=Path, required=True, help="folder of face videos")
    add_checkpoint_arguments(parser)
    parser.add_argument("--preset", default="lite-128")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument(
        "--samples", type=Path, help="write real/static/ours frame strips here (one PNG a clip)"
    )
    parser.add_argument(
        "--target-kbps",
        type=parse_target_kbps,
        default=DEFAULT_TARGET_KBPS,
        help=f"motion rate target, packet headers included (default {DEFAULT_TARGET_KBPS}, as "
        "encode and a call send); 'off' for the finest fixed step",
    )
    parser.add_argument(
        "--keyframe-quality",
        type=int,
        default=DEFAULT_QUALITY,
        help=f"key frame quality 0..100 (default {DEFAULT_QUALITY}, as a call sends)",
    )
    parser.add_argument("--cache-dir", type=Path, help="decoded-frame cache")
    parser.add_argument(
        "--frames", type=int, help="score only the first N frames of each clip (default: all)"
    )
    parser.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    from models.checkpoint import CheckpointError
    from training.styles import EXEMPLAR_STYLES
    from training.trainer import TrainingDivergedError, run

    options = dataclass_from_options(TrainOptions, args)
    needs_pictures = [name for name in options.styles if name in EXEMPLAR_STYLES]
    if needs_pictures and options.style_data is None:
        sys.stderr.write(
            f"cartooncodec train: {', '.join(needs_pictures)} take their colours from pictures: "
            "give their folder with --style-data\n"
        )
        return 1
    try:
        path = run(options)
    except (ValueError, CheckpointError, TrainingDivergedError) as error:
        sys.stderr.write(f"cartooncodec train: {error}\n")
        return 1
    sys.stdout.write(f"checkpoint: {path}\n")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from bench.evaluate import evaluate
    from bench.ourcodec import Setting
    from models.checkpoint import CheckpointError

    try:
        report = evaluate(
            args.clips,
            preset=args.preset,
            checkpoint=args.checkpoint,
            setting=Setting(keyframe_quality=args.keyframe_quality, target_kbps=args.target_kbps),
            samples_dir=args.samples,
            cache_dir=args.cache_dir,
            frames=args.frames,
        )
    except (ValueError, CheckpointError) as error:
        sys.stderr.write(f"cartooncodec eval: {error}\n")
        return 1
    sys.stdout.write(report.table() + "\n")
    if args.json is not None:
        args.json.write_text(report.to_json() + "\n")
    return 0
