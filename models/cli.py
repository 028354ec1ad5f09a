"""`cartooncodec style add`: a new style from a few pictures, cached for calls to use by name."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from models.checkpoint_option import add_checkpoint_arguments

log = logging.getLogger(__name__)

STYLE_EPILOG = """\
examples:
  cartooncodec style add my-comic --images ~/comics/ --face me.jpg --style-cache ~/.styles
  cartooncodec serve --style-cache ~/.styles        (then ask for the style "my-comic" in a call)

The style is adapted on --face (your own picture: it is only used here) without CLIP or any
other pretrained network; pictures without a face are allowed (a style is about look). The
cache keys styles by name and by the weights they were adapted on: serve the same --preset
and --checkpoint.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    style = subparsers.add_parser(
        "style",
        help="manage styles (add one from pictures)",
        description="Manage styles: `style add` adapts a new style to a few pictures.",
    )
    commands = style.add_subparsers(dest="style_command", metavar="STYLE_COMMAND", required=True)
    add = commands.add_parser(
        "add",
        help="adapt a style to a few pictures and cache it under a name",
        description="Adapt a new style to the look of a few pictures and cache it under NAME.",
        epilog=STYLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("name", metavar="NAME", help="the style's name (not a built-in style's)")
    add.add_argument(
        "--images", nargs="+", required=True, help="style pictures: files and/or folders"
    )
    add.add_argument("--face", required=True, type=Path, help="a picture of a face to adapt on")
    add.add_argument(
        "--style-cache",
        default=os.environ.get("CARTOONCODEC_STYLE_CACHE"),
        help="folder keeping adapted styles (default $CARTOONCODEC_STYLE_CACHE)",
    )
    add.add_argument("--preset", default="lite-128", help="model preset (must match the server)")
    add_checkpoint_arguments(add)
    add.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    add.add_argument("--steps", type=int, help="adaptation steps (default: the renderer's)")
    add.set_defaults(func=_add)


def _add(args: argparse.Namespace) -> int:
    import dataclasses

    from models.face_crop import FaceCropper, center_crop, crop
    from models.layer_selection import AdaptationConfig
    from models.renderer import Renderer
    from models.style_images import read_style_image, style_image_paths
    from models.style_names import custom_style_key

    custom_style_key(args.name)  # refuse a built-in's name before loading anything
    if args.style_cache is None:
        raise ValueError("give --style-cache DIR (or set $CARTOONCODEC_STYLE_CACHE)")
    paths = style_image_paths(args.images)
    images = [read_style_image(path) for path in paths]
    cropper = FaceCropper()
    face = read_style_image(args.face)
    box = cropper.detect(face)
    if box is None:
        log.warning("%s: no face found; adapting on its centre", args.face)
    adaptation = AdaptationConfig(progress=True)  # a bar of the steps on stderr
    if args.steps is not None:
        adaptation = dataclasses.replace(adaptation, steps=args.steps)
    started = time.monotonic()
    with Renderer(
        args.preset,
        args.checkpoint,
        args.device,
        style_cache_dir=args.style_cache,
        adaptation=adaptation,
    ) as renderer:
        side = renderer.size
        renderer.set_reference(center_crop(face, side) if box is None else crop(face, box, side))
        key = renderer.set_style_images(images, args.name, cropper, reuse_cached=False).result()
    sys.stdout.write(
        f"style {key!r}: {len(images)} pictures, {adaptation.steps} steps, "
        f"{time.monotonic() - started:.1f} s; cached in {args.style_cache}\n"
    )
    return 0
