"""bench memory: the server's RSS as participants join (a live server: under the live marker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cartooncodec.cli import main


def test_at_least_one_participant_is_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "memory", "--participants", "0", "--out", str(tmp_path)]) == 1
    error = "cartooncodec bench: error: --participants must be at least 1, got 0\n"
    assert capsys.readouterr().err == error


@pytest.mark.live
@pytest.mark.timeout(240)
def test_three_participants_on_the_tiny_preset(tmp_path: Path) -> None:
    args = ["--preset", "tiny", "--participants", "3", "--fps", "5", "--out", str(tmp_path)]
    assert main(["bench", "memory", *args]) == 0
    tables = json.loads((tmp_path / "memory.json").read_text())["tables"]
    rows = tables["rss"]["rows"]
    assert [r["participants"] for r in rows] == [1, 2, 3]
    assert all(100 < r["server_rss_mb"] < 2000 for r in rows)  # a real process's RSS
    (slope,) = tables["per_participant"]["rows"]
    assert slope["first_mb"] == rows[0]["server_rss_mb"]
    assert slope["last_mb"] == rows[-1]["server_rss_mb"]
