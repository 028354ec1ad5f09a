import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.metrics import PSNR_CAP_DB
from tests.face_clip import portrait, write_face_video
from training.evaluate import evaluate, frame_scores
from training.trainer import TrainOptions, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("eval")
    write_face_video(folder / "talk.mp4", frames=8)
    out = tmp_path_factory.mktemp("run")
    checkpoint = run(
        TrainOptions(data=folder, out=out, preset="tiny", steps=3, batch_size=2, styles=())
    )
    return folder, checkpoint


def test_frame_scores_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 200, (64, 64, 3), dtype=np.uint8)
    psnr, ssim, ms_ssim = frame_scores(frame, frame)
    assert psnr == PSNR_CAP_DB and ssim == pytest.approx(1.0) and ms_ssim == pytest.approx(1.0)
    brighter = frame + np.uint8(10)
    psnr, ssim, _ = frame_scores(brighter, frame)
    assert psnr == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-6)
    assert ssim < 1.0


def test_eval_reconstructs_through_the_codec(trained: tuple[Path, Path], tmp_path: Path) -> None:
    folder, checkpoint = trained
    report = evaluate(folder, preset="tiny", checkpoint=checkpoint, samples_dir=tmp_path)
    (clip,) = report.clips
    assert clip.clip == "talk" and clip.frames == 7  # the first frame is the reference
    assert 0 < clip.psnr < 60 and -1 <= clip.ssim <= 1 and 0 <= clip.ms_ssim <= 1
    assert clip.kbps > clip.payload_kbps > 0
    assert report.ssim == pytest.approx(clip.ssim)
    assert json.loads(report.to_json())["clips"][0]["clip"] == "talk"
    assert "overall" in report.table()
    strip = cv2.imread(str(tmp_path / "talk.png"))
    assert strip.shape == (2 * 32, 6 * 32, 3)  # real frames above, rendered below


def test_eval_needs_a_video(tmp_path: Path, trained: tuple[Path, Path]) -> None:
    cv2.imwrite(str(tmp_path / "still.png"), cv2.cvtColor(portrait(), cv2.COLOR_RGB2BGR))
    with pytest.raises(ValueError, match="stills cannot be scored"):
        evaluate(tmp_path, preset="tiny", checkpoint=trained[1])


EVAL_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"


@pytest.mark.skipif(not EVAL_CLIPS.is_dir(), reason=f"sample clips not found at {EVAL_CLIPS}")
def test_default_checkpoint_reconstructs_the_eval_clips(tmp_path: Path) -> None:
    """Guards the shipped checkpoint + codec: measured 0.710 SSIM at 4.77 kbps (model card)."""
    report = evaluate(EVAL_CLIPS, preset="lite-128", cache_dir=tmp_path)
    assert report.ssim > 0.68 and report.ms_ssim > 0.79 and report.psnr > 20.5
    assert report.kbps < 5.5
