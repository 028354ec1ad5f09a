"""bench attack at a tiny size: every attack runs, and nothing hostile gets through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.attack import FrameRates, LiveOptions, attack, malformed_messages
from cartooncodec.cli import main

pytestmark = pytest.mark.timeout(180)

OFFLINE = ["--requests", "12", "--packets", "300", "--ccv", "60"]
NO_CALL = ["--joins", "0", "--rooms", "0", "--prompts", "0"]


def _figures(folder: Path) -> dict[tuple[str, str], tuple[int, object]]:
    rows = json.loads((folder / "attack.json").read_text())["tables"]["figures"]["rows"]
    return {(r["attack"], r["measure"]): (r["count"], r["value"]) for r in rows}


def test_a_tiny_attack_finds_nothing(tmp_path: Path) -> None:
    assert main(["bench", "attack", *OFFLINE, *NO_CALL, "--out", str(tmp_path)]) == 0
    figures = _figures(tmp_path)
    assert figures[("motion packets (mutated)", "exceptions not BitstreamError")] == (300, 0)
    assert figures[(".ccv files (crafted)", "exceptions not BitstreamError")] == (60, 0)
    assert figures[("encoder rate targets (0.001-1000 kbps)", "runs that raised")] == (93, 0)
    assert figures[("signalling requests (mutated)", "HTTP 500")] == (12, 0)
    assert figures[("signalling requests (mutated)", "stranded seats")] == (12, 0)
    assert not any(name.startswith("call") for name, _ in figures)  # no live call asked for


@pytest.mark.live
def test_a_tiny_live_call_survives_churn_prompts_and_malformed_messages(tmp_path: Path) -> None:
    """A real server process and call: 2 dead-end joins, 20 rooms, 30 prompt changes."""
    live = [*("--joins", "2", "--rooms", "20", "--prompts", "30", "--baseline-seconds", "3")]
    server = ["--token-ttl", "2", "--connect-timeout", "1"]
    nothing = ["--requests", "0", "--packets", "0", "--ccv", "0"]
    assert main(["bench", "attack", *nothing, *live, *server, "--out", str(tmp_path)]) == 0
    figures = _figures(tmp_path)
    assert figures[("call before the churn", "fps shown")][1] > 3  # 10 asked, a loaded machine
    assert figures[("dead-end joins", "HTTP statuses")] == (2, {"200": 2})
    assert figures[("room creations", "HTTP statuses")] == (20, {"200": 20})
    assert figures[("dead-end joins", "server RSS MB start -> end")][0] == 2
    barrage = "prompt changes with malformed messages"
    assert figures[(barrage, "last prompt active as")] == (30, "comic")
    assert figures[(barrage, "participants told bye or failed")] == (30, [])
    assert figures[(barrage, "alice heard bye")] == (30, False)
    assert figures[(barrage, "fps shown after / before")][1] > 0.5
    assert figures[("churn (joins, rooms)", "rooms left (the call's aside) after expiry")] == (
        22,
        0,
    )
    assert figures[("dead-end joins", "seconds")][0] == 2
    windows = figures[("call during the churn", "fps shown per 5 s window")][1]
    assert isinstance(windows, list) and len(windows) >= 1


def test_the_time_limit_bounds_each_attack() -> None:
    counts = {"requests": 0, "packets": 10**9, "ccv": 10**9, "joins": 0, "rooms": 0, "prompts": 0}
    rows = attack(counts, seconds=0.5, seed=0, live=LiveOptions())
    assert 0 < rows[0]["count"] < 10**9 and 0 < rows[1]["count"] < 10**9


class Viewer:
    def __init__(self) -> None:
        self.shown: list[int] = []


def test_frame_rates_are_read_between_the_samples_around_a_window() -> None:
    fast, slow = Viewer(), Viewer()
    rates = FrameRates([fast, slow])
    rates.samples = [
        (float(t), [10 * t, 5 * t], 1.0) for t in range(11)
    ]  # 10 and 5 frames a second
    assert rates.fps(2.0, 6.0) == 5.0  # the slower viewer
    assert rates.fps(2.5, 3.2) == 5.0  # from sample 2 to sample 4
    assert rates.windows(0.0, 10.0) == [5.0, 5.0]
    rates.samples[6:] = [
        (float(t), [50, 25], 1.0) for t in range(6, 11)
    ]  # both viewers froze at 5 s
    assert rates.windows(0.0, 10.0) == [5.0, 0.0]


def test_every_malformed_message_is_text_or_bytes_a_data_channel_can_carry() -> None:
    import random

    messages = malformed_messages(random.Random(0))
    assert set(messages) == {"control", "stats"}
    texts = [m for m in messages["control"] if isinstance(m, str)]
    assert len(texts) > 10 and all(m.encode("utf-8") is not None for m in texts)  # no surrogate
    assert '{"type": []}' in messages["control"] and "[" * 4000 in messages["stats"]
