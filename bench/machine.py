"""Which machine a benchmark ran on: written into every result so figures can be compared."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def machine_record() -> dict[str, Any]:
    """CPU model, usable cores, load, GPU, library versions and the UTC date of the run."""
    import av
    import torch

    return {
        "cpu_model": cpu_model(),
        "cpu_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_version": torch.__version__,
        "pyav_version": av.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1min": load_average(),
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def load_average() -> float | None:
    """Runnable processes over the last minute: timings taken on a busy machine are slower."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name; `platform.processor()` is often empty on Linux."""
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe(record: dict[str, Any]) -> str:
    """One line for tables and READMEs, e.g. 'AMD EPYC, 2 cores, no GPU, torch 2.13.0'."""
    gpu = record.get("gpu") or "no GPU"
    return (
        f"{record['cpu_model']}, {record['cpu_cores']} cores (load {record['load_average_1min']}), "
        f"{gpu}, torch {record['torch_version']}, {record['date_utc']}"
    )
