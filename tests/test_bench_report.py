"""Shared bench output: tables, CSV, JSON with the machine record, PNG figures."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest

from bench.report import Table, format_table, format_value, new_figure, publish, save_figure


def test_format_value_keeps_four_significant_digits() -> None:
    assert format_value(0.812345) == "0.8123"
    assert format_value(28.5349) == "28.53"
    assert format_value(12345.6) == "12346"
    assert format_value(None) == "–"
    assert format_value(3) == "3"


def test_table_is_markdown_in_column_order() -> None:
    table = Table("t", "Title", ("b", "a"))
    table.add(a=1, b=2.5, extra="ignored")
    assert format_table(table).splitlines() == [
        "**Title**",
        "",
        "| b | a |",
        "|---|---|",
        "| 2.5 | 1 |",
    ]


def test_row_missing_a_column_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lacks columns \['a'\]"):
        Table("t", "Title", ("a", "b")).add(b=1)


def test_publish_writes_json_csv_and_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = Table("speed", "Speed", ("stage", "ms"))
    table.add(stage="render", ms=12.25)
    fig, axes = new_figure(ncols=2)
    axes[0].plot([1, 2], [3, 4])
    plot = save_figure(fig, tmp_path / "plots" / "speed.png")  # folders made as needed
    args = argparse.Namespace(out=tmp_path, frames=3, func=print)
    json_path = publish(tmp_path, "speed", [table], args, details={"extra": [1, 2]}, plots=[plot])
    result = json.loads(json_path.read_text())
    assert result["benchmark"] == "speed"
    assert result["arguments"] == {"out": str(tmp_path), "frames": 3}
    assert result["tables"]["speed"]["rows"] == [{"stage": "render", "ms": 12.25}]
    assert result["extra"] == [1, 2]
    assert set(result["machine"]) >= {"cpu_model", "cpu_cores", "gpu", "torch_version", "date_utc"}
    with (tmp_path / "speed_speed.csv").open() as handle:
        assert list(csv.DictReader(handle)) == [{"stage": "render", "ms": "12.25"}]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "| render | 12.25 |" in printed and "wrote " in printed
