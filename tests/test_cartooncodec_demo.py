from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from cartooncodec.demo import DemoOptions, measure_swaps, pick_inputs, run_demo
from client.callclient import CallResult, PromptSent, ShownFrame
from client.connection import WireTotals

pytestmark = pytest.mark.timeout(120)


def result(name: str, prompts: list[PromptSent], shown: list[ShownFrame]) -> CallResult:
    return CallResult(name, 10.0, 10.0, 100, len(shown), shown, prompts, [], 0, 0, 0, WireTotals())


def test_swap_latency_is_sent_to_first_frame_in_the_new_style() -> None:
    alice = result("alice", [PromptSent(0, "sketch", 0.0), PromptSent(1, "comic", 1000.0)], [])
    shown_at_bob = [
        ShownFrame(arrival_ms=t, latency_ms=50.0, seq=i, prompt_id=0 if t < 1100 else 1)
        for i, t in enumerate([900.0, 1020.0, 1060.0, 1100.0, 1140.0])
    ]
    bob = result("bob", [PromptSent(0, "cel", 0.0)], shown_at_bob)
    (swap,) = measure_swaps({"alice": alice, "bob": bob})
    assert (swap.sender, swap.text, swap.at_s) == ("alice", "comic", 1.0)
    assert swap.latency_ms == 100.0 and swap.stale_frames == 2


def test_demo_inputs_are_training_clips_or_synthetic(tmp_path: Path) -> None:
    assert pick_inputs(tmp_path) == ["synthetic", "synthetic"]
    (tmp_path / "train").mkdir()
    (tmp_path / "eval").mkdir()
    for name in ("train/b.mp4", "train/a.mp4", "eval/c.mp4"):
        (tmp_path / name).write_bytes(b"")
    assert pick_inputs(tmp_path) == [str(tmp_path / "train/a.mp4"), str(tmp_path / "train/b.mp4")]
    assert pick_inputs(None) == ["synthetic", "synthetic"]  # no data folder: no clips looked for


async def test_demo_writes_every_output(tmp_path: Path) -> None:
    options = DemoOptions(
        out=tmp_path / "out", seconds=3.0, preset="tiny", fps=10.0, data=tmp_path / "none"
    )
    report = await run_demo(options)
    for name in report.files:
        assert (options.out / name).stat().st_size > 0, name
    assert report.files[:4] == ["alice.mp4", "bob.mp4", "alice-local.mp4", "bob-local.mp4"]
    latency = json.loads((options.out / "latency.json").read_text())
    assert set(latency["runs"]) == {"server", "local"}
    for run in latency["runs"].values():
        assert set(run["participants"]) == {"alice", "bob"}
        assert all(p["frames_shown"] for p in run["participants"].values())
        # two swaps per participant were sent (random tiny weights have no styles: refused)
        assert len(run["swaps"]) == 4
    rows = {(r["render"], r["direction"]): r for r in latency["rows"]}
    server, local = rows["server", "alice -> bob"], rows["local", "alice -> bob"]
    assert 0 < local["downlink_kbps"] < server["downlink_kbps"]  # motion, not (32 px) video
    assert "| local | alice -> bob |" in report.table()
    # both hear each other: each recording carries the other's sound, and the viewers measured
    # how far it was from the face
    for row in report.rows():
        assert row["av_offset_p50_ms"] is not None and row["av_offset_p95_abs_ms"] is not None
    for name in report.files[:4]:
        with av.open(str(options.out / name)) as container:
            (audio,) = container.streams.audio
            assert audio.sample_rate == 48000 and audio.frames > 0
