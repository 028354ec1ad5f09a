"""`cartooncodec bench ...`: one module per benchmark, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib

BENCH_MODULES: tuple[str, ...] = (
    "bench.rd",
    "bench.style",
    "bench.stylesheet",
    "bench.codec",
    "bench.call",
    "bench.speed",
    "bench.attack",
    "bench.memory",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure rate, quality, speed and latency",
        description="Benchmarks. Each writes a table to stdout and JSON/CSV/PNG under --out.",
    )
    bench_subparsers = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    for name in BENCH_MODULES:
        importlib.import_module(name).register(bench_subparsers)
