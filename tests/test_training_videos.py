from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.face_clip import portrait, write_face_video
from training import videos
from training.videos import DEFAULT_DATA, PairDataset, data_folder, discover, load_clips


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faces")
    write_face_video(folder / "talk.mp4", frames=6)
    cv2.imwrite(str(folder / "still.png"), cv2.cvtColor(portrait(), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_discovers_videos_and_images_only(face_folder: Path) -> None:
    assert [p.name for p in discover(face_folder)] == ["still.png", "talk.mp4"]


def test_loads_face_crops_at_the_requested_size(face_folder: Path, tmp_path: Path) -> None:
    clips, report = load_clips(face_folder, 32, cache_dir=tmp_path)
    by_name = {clip.name: clip for clip in clips}
    assert by_name["talk"].frames.shape == (6, 32, 32, 3)
    assert by_name["talk"].fps == pytest.approx(25.0)
    assert by_name["still"].frames.shape == (1, 32, 32, 3) and by_name["still"].fps is None
    assert report.skipped == {}
    assert sorted(report.used) == ["still.png", "talk.mp4"]


def test_cache_is_reused_without_decoding_again(
    face_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = load_clips(face_folder, 32, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2

    def no_decoding(path: Path) -> list[np.ndarray]:
        raise AssertionError(f"decoded {path} although it is cached")

    monkeypatch.setattr(videos, "read_video", no_decoding)
    second, _ = load_clips(face_folder, 32, cache_dir=tmp_path)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.frames, b.frames)


def test_unusable_files_are_skipped_and_counted(
    face_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "talk.mp4").write_bytes((face_folder / "talk.mp4").read_bytes())
    (mixed / "broken.mp4").write_bytes(b"\x00not really an mp4" * 10)
    cv2.imwrite(str(mixed / "wall.png"), np.full((120, 120, 3), 80, np.uint8))
    clips, report = load_clips(mixed, 32)
    assert [c.name for c in clips] == ["talk"]
    assert report.skipped["wall.png"] == "no face detected"
    assert report.skipped["broken.mp4"].startswith("unreadable video")
    assert "skipped 2 of 3 files" in caplog.text


def test_nothing_usable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no usable face clip .* no video or image"):
        load_clips(tmp_path, 32)
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((120, 120, 3), 80, np.uint8))
    with pytest.raises(ValueError, match=r"wall.png \(no face detected\)"):
        load_clips(tmp_path, 32)
    with pytest.raises(ValueError, match="is not a folder"):
        load_clips(tmp_path / "missing", 32)


def test_pairs_come_from_one_clip_and_are_repeatable(face_folder: Path) -> None:
    clips, _ = load_clips(face_folder, 32)
    clips = [c for c in clips if c.name == "talk"]
    dataset = PairDataset(clips, length=10, seed=3)
    source, driving = dataset[4]
    assert source.shape == (3, 32, 32) and source.dtype == torch.float32
    assert float(source.min()) >= 0.0 and float(source.max()) <= 1.0
    again = PairDataset(clips, length=10, seed=3)[4]
    torch.testing.assert_close(source, again[0])
    torch.testing.assert_close(driving, again[1])
    frames = torch.from_numpy(np.asarray(clips[0].frames)).permute(0, 3, 1, 2).float() / 255
    candidates = torch.cat([frames, frames.flip(-1)])
    assert any(torch.allclose(source, c) for c in candidates)
    assert len(dataset) == 10


def test_the_data_folder_is_the_option_then_the_environment_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARTOONCODEC_DATA", raising=False)
    assert data_folder(None) == DEFAULT_DATA
    assert DEFAULT_DATA.parts[-2:] == ("shared", "data")
    assert DEFAULT_DATA.parent.parent == Path(__file__).resolve().parents[1].parent
    monkeypatch.setenv("CARTOONCODEC_DATA", str(tmp_path / "env"))
    assert data_folder(None) == tmp_path / "env"
    assert data_folder(tmp_path / "option") == tmp_path / "option"
    monkeypatch.setenv("CARTOONCODEC_DATA", "")  # set but empty: the default
    assert data_folder(None) == DEFAULT_DATA
