"""`cartooncodec train` and `cartooncodec eval`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from codec.keyframe import DEFAULT_QUALITY

log = logging.getLogger(__name__)

DEFAULT_STYLES = ("sketch", "zombie", "cel", "comic", "watercolor", "pop-art")

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
    parser.add_argument("--data", type=Path, required=True, help="folder of mp4/mov/avi/png/jpg")
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument("--preset", default="lite-128", help="full-256, lite-128 or tiny")
    parser.add_argument("--steps", type=int, default=100_000, help="stage-1 steps (default 100000)")
    parser.add_argument("--max-minutes", type=float, help="stop stage 1 after this wall time")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step and process")
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint.pt")
    parser.add_argument(
        "--init-from",
        type=Path,
        help="start from the weights of this checkpoint that fit (any generator version)",
    )
    parser.add_argument("--cache-dir", type=Path, help="decoded-frame cache (default OUT/cache)")
    parser.add_argument("--max-frames", type=int, help="keep at most N frames per clip")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--log-every", type=int, default=10, help="steps between CSV rows")
    parser.add_argument("--sample-every", type=int, default=500, help="steps between grids")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="steps between saves")
    parser.add_argument(
        "--validate-every", type=int, default=250, help="steps between validation runs"
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="share of frames held out for validation, whole people at a time (0: none)",
    )
    parser.add_argument("--workers", type=int, default=2, help="data loader processes")
    parser.add_argument(
        "--no-augment", action="store_true", help="no flip, scale/shift or colour jitter"
    )
    parser.add_argument(
        "--no-adversarial",
        action="store_true",
        help="no discriminator (L1 + MS-SSIM only: faster, blurrier)",
    )
    parser.add_argument("--vgg-weights", type=Path, help="torchvision vgg19 .pth: adds VGG loss")
    parser.add_argument(
        "--clip-weights",
        type=Path,
        help="local open_clip weights file: adds CLIP directional/global losses in stage 2",
    )
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument(
        "--styles",
        default=",".join(DEFAULT_STYLES),
        help="comma-separated built-in styles for stage 2; empty to skip stage 2",
    )
    parser.add_argument("--style-steps", type=int, default=100, help="adaptation steps per style")
    parser.add_argument("--style-top-k", type=int, default=4, help="layers adapted per style")
    parser.add_argument("--style-minutes", type=float, help="time budget for all of stage 2")
    parser.add_argument(
        "--style-data",
        type=Path,
        help="folder of the exemplar styles' pictures (disney-princess, pixar, anime-painting)",
    )
    parser.add_argument("--export", type=Path, help="also write a float16 inference checkpoint")
    parser.set_defaults(func=_train)


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure reconstruction quality and motion kbps through the real codec",
        description=EVAL_EPILOG,
    )
    parser.add_argument("--clips", type=Path, required=True, help="folder of face videos")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped one for --preset")
    parser.add_argument("--preset", default="lite-128")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument(
        "--samples", type=Path, help="write real/static/ours frame strips here (one PNG a clip)"
    )
    parser.add_argument("--target-kbps", type=float, help="motion rate target (default: none)")
    parser.add_argument(
        "--keyframe-quality",
        type=int,
        default=DEFAULT_QUALITY,
        help=f"key frame quality 0..100 (default {DEFAULT_QUALITY}, as a call sends)",
    )
    parser.add_argument("--cache-dir", type=Path, help="decoded-frame cache")
    parser.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    from models.checkpoint import CheckpointError
    from training.styles import EXEMPLAR_STYLES
    from training.trainer import TrainingDivergedError, TrainOptions, run

    styles = tuple(name.strip() for name in args.styles.split(",") if name.strip())
    needs_pictures = [name for name in styles if name in EXEMPLAR_STYLES]
    if needs_pictures and args.style_data is None:
        sys.stderr.write(
            f"cartooncodec train: {', '.join(needs_pictures)} are learned from pictures: "
            "give their folder with --style-data\n"
        )
        return 1
    options = TrainOptions(
        data=args.data,
        out=args.out,
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        max_minutes=args.max_minutes,
        resume=args.resume,
        init_from=args.init_from,
        cache_dir=args.cache_dir or args.out / "cache",
        max_frames=args.max_frames,
        device=args.device,
        log_every=args.log_every,
        sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every,
        validate_every=args.validate_every,
        validation_fraction=args.validation_fraction,
        num_workers=args.workers,
        augment=not args.no_augment,
        adversarial=not args.no_adversarial,
        vgg_weights=args.vgg_weights,
        clip_weights=args.clip_weights,
        clip_model=args.clip_model,
        styles=styles,
        style_steps=args.style_steps,
        style_top_k=args.style_top_k,
        style_minutes=args.style_minutes,
        style_data=args.style_data,
        export=args.export,
    )
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
        )
    except (ValueError, CheckpointError) as error:
        sys.stderr.write(f"cartooncodec eval: {error}\n")
        return 1
    sys.stdout.write(report.table() + "\n")
    if args.json is not None:
        args.json.write_text(report.to_json() + "\n")
    return 0
