"""The machine record written into every result."""

from __future__ import annotations

from pathlib import Path

from bench.machine import cpu_model, describe, machine_record, usable_cores


def test_cpu_model_reads_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    assert cpu_model(info) == "Test CPU 9000"
    assert cpu_model(tmp_path / "absent")  # falls back to platform information


def test_machine_record_describes_this_machine() -> None:
    record = machine_record()
    assert record["cpu_cores"] == usable_cores() >= 1
    assert f"{record['cpu_cores']} cores" in describe(record)


def test_machine_record_has_load_and_date() -> None:
    record = machine_record()
    assert record["load_average_1min"] is None or record["load_average_1min"] >= 0
    assert record["date_utc"].endswith("+00:00")
