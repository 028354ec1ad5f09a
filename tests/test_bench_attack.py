"""bench attack at a tiny size: every attack runs, and nothing hostile gets through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.attack import attack
from cartooncodec.cli import main

pytestmark = pytest.mark.timeout(120)

TINY = ["--requests", "12", "--packets", "300", "--ccv", "60", "--joins", "3", "--rooms", "20"]


def test_a_tiny_attack_finds_nothing(tmp_path: Path) -> None:
    assert main(["bench", "attack", *TINY, "--seconds", "20", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "attack.json").read_text())["tables"]["figures"]["rows"]
    figures = {(r["attack"], r["measure"]): (r["count"], r["value"]) for r in rows}
    assert figures[("motion packets (mutated)", "exceptions not BitstreamError")] == (300, 0)
    assert figures[(".ccv files (crafted)", "exceptions not BitstreamError")] == (60, 0)
    assert figures[("signalling requests (mutated)", "HTTP 500")] == (12, 0)
    assert figures[("signalling requests (mutated)", "stranded seats")] == (12, 0)
    assert figures[("dead-end joins", "RSS MB start -> end")][0] == 3
    assert figures[("room creations", "rooms left after expiry")] == (20, 0)


def test_the_time_limit_bounds_each_attack() -> None:
    counts = {"requests": 0, "packets": 10**9, "ccv": 10**9, "joins": 0, "rooms": 0}
    rows = attack(counts, seconds=0.5, seed=0)
    assert 0 < rows[0]["count"] < 10**9 and 0 < rows[1]["count"] < 10**9
