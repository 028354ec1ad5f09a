"""``--checkpoint`` and ``--random-weights``: how every command that loads the networks is told
which weights to use. Light (no torch), so that building the command line stays instant.

Without either option a command loads the preset's shipped checkpoint; where the preset has
none, ``models.checkpoint.load_models`` refuses with the file it looked for. Random weights are
only ever used when asked for: ``--random-weights`` passes ``RANDOM_WEIGHTS`` as the checkpoint,
and $CARTOONCODEC_RANDOM_WEIGHTS (which the test suite sets) lets a missing checkpoint mean them.
"""

from __future__ import annotations

import argparse

RANDOM_WEIGHTS = "random"  # the checkpoint that means: randomly initialised networks
RANDOM_WEIGHTS_ENV = "CARTOONCODEC_RANDOM_WEIGHTS"


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint FILE`` or ``--random-weights`` (one of them), into ``args.checkpoint``."""
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--checkpoint", default=None, help="model checkpoint (default: the preset's shipped one)"
    )
    weights.add_argument(
        "--random-weights",
        dest="checkpoint",
        action="store_const",
        const=RANDOM_WEIGHTS,
        help="untrained networks (they render noise): for tests and speed measurements",
    )
