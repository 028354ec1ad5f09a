import argparse
import json

import numpy as np
import pytest

from bench import codec as bench_codec
from tests.codec_samples import synthetic_motion


def test_code_features_reports_rates_timings_and_half_step_error():
    row = bench_codec.code_features("clip", "npy", synthetic_motion(50), target_kbps=None)
    assert row["frames"] == 50
    assert row["header_kbps"] == pytest.approx(6 * 8 * 25 / 1000)
    assert row["total_kbps"] == pytest.approx(row["payload_kbps"] + row["header_kbps"])
    assert row["bytes_per_packet"] == pytest.approx(row["total_kbps"] * 1000 / 8 / 25)
    assert 0 < row["kp_err_mean_px"] <= row["kp_err_max_px"] <= 1.0 + 1e-6
    assert row["encode_us"] > 0 and row["decode_us"] > 0


def test_tracked_motion_follows_a_moving_pattern():
    rng = np.random.default_rng(0)
    texture = (rng.random((96, 96)) * 255).astype(np.uint8)
    texture = np.kron(texture, np.ones((4, 4), np.uint8))  # blocky: good corners
    frames = np.stack(
        [np.repeat(np.roll(texture, 2 * t, axis=1)[:256, :256, None], 3, 2) for t in range(6)]
    )
    features = bench_codec.tracked_motion(frames)
    assert features.shape == (6, 60)
    shift_px = (features[-1, 0:20:2] - features[0, 0:20:2]) * 128
    assert np.median(shift_px) == pytest.approx(10, abs=1)
    jacobians = features[-1, 20:].reshape(10, 2, 2)
    assert np.median(np.abs(jacobians - np.eye(2)), axis=0).max() < 0.1


def test_run_on_feature_files_writes_the_table(tmp_path, capsys):
    paths = []
    for seed in range(2):
        paths.append(tmp_path / f"clip{seed}.npy")
        np.save(paths[-1], synthetic_motion(30, seed=seed))
    out_json = tmp_path / "rows.json"
    args = argparse.Namespace(
        features_npy=[str(p) for p in paths],
        clips=None,
        motion=["model"],
        preset="tiny",
        checkpoint=None,
        frames=None,
        crop="center",
        target_kbps=None,
        json=out_json,
        out=tmp_path / "out",
        loss=[0.2],
        ack_delay=[1],
        seeds=2,
    )
    assert bench_codec.run(args) == 0
    rows = json.loads(out_json.read_text())
    assert [r["clip"] for r in rows] == ["clip0", "clip1", "mean"]
    assert rows[-1]["frames"] == 60
    printed = capsys.readouterr().out
    assert "payload_kbps" in printed
    assert "| mean | - | ack+1 | 0.2 | 60 |" in printed


def test_losses_with_acknowledgements_cost_only_the_lost_frames():
    features = synthetic_motion(250, seed=3)
    clean = bench_codec.lossy_features("c", "npy", features, 0.0, "ack", 1, seeds=1)
    assert (clean["decoded_share"], clean["longest_freeze_ms"]) == (1.0, 40.0)
    assert clean["intra_frames"] == 10 and clean["reference"] == "ack+1"
    rows = {
        r: bench_codec.lossy_features("c", "npy", features, 0.3, r, 1, seeds=3)
        for r in bench_codec.REFERENCES
    }
    # the same loss pattern (seeds 0..2) for each: ack decodes every frame that arrives
    lost = 1 - rows["ack"]["decoded_share"]
    assert 0.2 < lost < 0.4
    assert rows["previous"]["decoded_share"] < rows["ack"]["decoded_share"] - 0.2
    assert rows["intra"]["decoded_share"] <= rows["ack"]["decoded_share"]
    assert rows["intra"]["payload_kbps"] > rows["ack"]["payload_kbps"]


def test_unknown_reference_is_refused():
    with pytest.raises(ValueError, match="reference 'next' not one of"):
        bench_codec.lossy_features("c", "npy", synthetic_motion(5), 0.1, "next", 1, seeds=1)


def test_feature_files_of_the_wrong_shape_are_refused(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros((5, 7)))
    with pytest.raises(SystemExit, match="expected an N x 60 feature array"):
        bench_codec._load_features(path)
