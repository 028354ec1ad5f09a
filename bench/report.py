"""Shared output of every benchmark: a Markdown table on stdout, JSON + CSV + PNG under --out.

Every bench module builds `Table`s and calls `publish`, so all results carry the same machine
record, date and arguments, and the printed tables can be pasted into a README as they are.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.machine import describe, machine_record
from models.checkpoint_option import add_checkpoint_arguments

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_OUT = Path("bench-results")


@dataclass
class Table:
    """Rows of one result table; `columns` fixes the order (and which keys are shown)."""

    name: str
    title: str
    columns: Sequence[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise ValueError(f"table {self.name!r}: row lacks columns {missing}")
        self.rows.append(row)


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for the JSON, CSV and PNG results (default {DEFAULT_OUT}/)",
    )


def add_bench_parser(
    subparsers: argparse._SubParsersAction, name: str, help: str, description: str | None
) -> argparse.ArgumentParser:
    """`cartooncodec bench <name>` with the module docstring as description and --out."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_out_argument(parser)
    return parser


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset and --checkpoint or --random-weights, as every bench running the models takes."""
    parser.add_argument("--preset", default="lite-128", help="model preset (default lite-128)")
    add_checkpoint_arguments(parser)


def format_value(value: Any) -> str:
    """Four significant digits for fractions, no exponent notation for large numbers."""
    if isinstance(value, bool) or not isinstance(value, float):
        return "–" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def format_table(table: Table) -> str:
    """A GitHub Markdown table with a bold title line."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = [
        "| " + " | ".join(format_value(row[c]) for c in table.columns) + " |" for row in table.rows
    ]
    return "\n".join([f"**{table.title}**", "", header, rule, *body, ""])


def write_csv(path: Path, table: Table) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table.columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table.rows)
    return path


def command_line() -> str:
    """How this run was started, as a shell line (the console script shows as `cartooncodec`)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "cartooncodec":
        argv[0] = "cartooncodec"
    return shlex.join(argv)


def arguments_record(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options as JSON-friendly values (paths as strings, callables left out)."""
    record: dict[str, Any] = {}
    for key, value in vars(args).items():
        if callable(value):
            continue
        record[key] = str(value) if isinstance(value, Path) else value
    return record


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 4.0) -> tuple[Figure, Any]:
    """A figure on the non-interactive Agg backend (benchmarks run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def publish(
    out_dir: Path,
    name: str,
    tables: Sequence[Table],
    args: argparse.Namespace,
    details: Mapping[str, Any] | None = None,
    plots: Sequence[Path] = (),
) -> Path:
    """Print the tables, write `<name>.json` and a `<name>_<table>.csv` each; return the JSON.

    The JSON holds the machine record, the command line, the parsed arguments, every table's
    rows, the plot paths and whatever raw `details` the benchmark wants to keep (e.g. curves).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_record()
    sys.stdout.write(f"\n{name} — {describe(machine)}\n\n")
    for table in tables:
        sys.stdout.write(format_table(table) + "\n")
        write_csv(out_dir / f"{name}_{table.name}.csv", table)
    payload = {
        "benchmark": name,
        "machine": machine,
        "command": command_line(),
        "arguments": arguments_record(args),
        "tables": {t.name: {"title": t.title, "rows": t.rows} for t in tables},
        "plots": [str(p) for p in plots],
        **(details or {}),
    }
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    for path in (json_path, *plots):
        sys.stdout.write(f"wrote {path}\n")
    return json_path


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays, which results often hold, as plain JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
