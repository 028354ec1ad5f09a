"""The `cartooncodec` command: one subcommand per job, each defined next to the part it drives.

Every module in COMMAND_MODULES exposes ``register(subparsers)``, which adds its subcommands
and sets ``func`` (taking the parsed namespace, returning an exit code). Heavy imports (torch,
aiortc) happen inside those functions so that ``--help`` stays instant.

An exception escaping a subcommand ends the command with one line on stderr and exit code 1;
``-v`` logs its traceback as well.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from client.cli import add_model_args

logger = logging.getLogger("cartooncodec")

DEMO_FPS = 10.0  # two renderers and two extractors share this machine's CPU in the demo
COMMAND_MODULES = (
    "client.cli",  # call
    "server.cli",  # serve
    "codec.cli",  # encode, decode
    "models.cli",  # style add
    "training.cli",  # train, eval
    "bench.cli",  # bench ...
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cartooncodec",
        description="Face video calls at a few kbps, rendered as a cartoon in a style you "
        "describe in words. Start with `cartooncodec demo`.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register_demo(subparsers)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _accept_verbose_after_subcommand(subparsers)
    return parser


def _register_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a whole two-party call on this machine, with a latency report",
        description="Start the server on loopback and two participants (alice, bob) in one "
        "process, once with the server rendering and once with each viewer rendering the other "
        "itself; each swaps prompts mid-call. Writes what each saw (alice.mp4, bob.mp4, and "
        "alice-local.mp4, bob-local.mp4), latency.json, latency.png and summary.md into --out, "
        "and prints the figures.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the call")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with train/*.mp4 clips to use as the two cameras (default "
        "$CARTOONCODEC_DATA, else ../shared/data; synthetic portraits when absent)",
    )
    parser.add_argument(
        "--mute", action="store_true", help="calls without sound (to compare what it costs)"
    )
    add_model_args(parser, fps=DEMO_FPS)
    parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    # Imported here, like every command's models and network stack, so that --help is instant.
    from cartooncodec.demo import DemoOptions, run_demo
    from training.videos import data_folder

    options = DemoOptions(
        out=args.out,
        seconds=args.seconds,
        preset=args.preset,
        checkpoint=args.checkpoint,
        fps=args.fps,
        data=data_folder(args.data),
        mute=args.mute,
    )
    report = asyncio.run(run_demo(options))
    sys.stdout.write(report.table() + "\n")
    sys.stdout.write(f"wrote {', '.join(report.files)} into {args.out}/\n")
    return 0


def _accept_verbose_after_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Let `cartooncodec demo -v` work as well as `cartooncodec -v demo`."""
    for sub in subparsers.choices.values():
        sub.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging"
        )
        for action in sub._subparsers._group_actions if sub._subparsers else ():
            if isinstance(action, argparse._SubParsersAction):
                _accept_verbose_after_subcommand(action)


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # the one place where any command's failure is reported
        if args.verbose:
            logger.exception("cartooncodec %s failed", args.command)
        sys.stderr.write(f"cartooncodec {args.command}: error: {one_line(exc)}\n")
        return 1


def one_line(exc: BaseException) -> str:
    """The exception as one line: its type when it says nothing, its message otherwise."""
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__
