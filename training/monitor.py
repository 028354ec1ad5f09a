"""What a training run leaves behind for people: a CSV log, loss-curve and sample-grid PNGs.

All of it is written by rank 0 only; nothing here touches the optimisation.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch


class LossLog:
    """Append-only CSV of ``step, stage, seconds, <loss terms>``; survives --resume."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._columns: list[str] | None = None
        if path.exists():
            with path.open(newline="") as handle:
                header = next(csv.reader(handle), None)
            self._columns = header

    def write(self, step: int, stage: str, seconds: float, losses: Mapping[str, float]) -> None:
        row = {"step": step, "stage": stage, "seconds": round(seconds, 2), **losses}
        if self._columns is None or any(key not in self._columns for key in row):
            self._start(list(row))
        assert self._columns is not None
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self._columns, restval="").writerow(row)

    def _start(self, columns: list[str]) -> None:
        """(Re)write the header; rows written before keep their values under the old columns."""
        old_rows = self.rows()
        merged = list(self._columns or [])
        merged += [c for c in columns if c not in merged]
        self._columns = merged
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=merged, restval="")
            writer.writeheader()
            writer.writerows(old_rows)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as handle:
            return list(csv.DictReader(handle))


def plot_losses(log: LossLog, path: Path, smoothing: int = 20) -> None:
    """One panel per loss term (moving average over ``smoothing`` logged steps), log-scale y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = log.rows()
    if not rows:
        return
    terms = [c for c in rows[0] if c not in ("step", "stage", "seconds")]
    columns = 3
    figure, axes = plt.subplots(
        math.ceil(len(terms) / columns), columns, figsize=(12, 3 * math.ceil(len(terms) / columns))
    )
    for axis, term in zip(np.atleast_1d(axes).ravel(), terms, strict=False):
        points = [(int(r["step"]), float(r[term])) for r in rows if r.get(term)]
        if not points:
            continue
        steps, values = map(np.asarray, zip(*points, strict=True))
        window = max(1, min(smoothing, len(values)))
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        axis.plot(steps, values, alpha=0.25, color="tab:blue")
        axis.plot(steps[window - 1 :], smooth, color="tab:blue")
        axis.set_title(term)
        axis.set_xlabel("step")
        if np.all(values > 0):
            axis.set_yscale("log")
    for axis in np.atleast_1d(axes).ravel()[len(terms) :]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def save_grid(columns: Sequence[tuple[str, torch.Tensor]], path: Path) -> None:
    """Sample grid PNG: one labelled column per entry, one row per batch item.

    columns: (title, Bx3xHxW in [0, 1]) pairs, e.g. source | driving | reconstruction | styles.
    """
    import cv2

    tiles = []
    for title, images in columns:
        array = (images.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
        column = np.concatenate(list(array.transpose(0, 2, 3, 1)), axis=0)
        label = np.full((14, column.shape[1], 3), 255, np.uint8)
        cv2.putText(label, title[:14], (2, 11), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
        tiles.append(np.concatenate([label, column], axis=0))
    grid = np.concatenate(tiles, axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
