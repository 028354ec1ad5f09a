import argparse
import json
from concurrent.futures import Future
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

import models
from codec import cli as codec_cli
from codec.container import CcvFile, read_container, write_container
from codec.keyframe import decode_keyframe
from models.style_images import picture_style_name

SIZE = 64


def _write_clip(path, frames: int = 12) -> None:
    """A tiny clip of a bright square moving right across a dark background."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            image = np.full((SIZE, SIZE, 3), 20, dtype=np.uint8)
            image[20:40, 5 + 3 * index : 25 + 3 * index] = 230
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


class FakeExtractor:
    """Features from the bright square's centre: keypoints follow it, Jacobians are identity."""

    def __init__(self, preset: str = "tiny", checkpoint=None) -> None:
        self.size = SIZE
        self.config = models.get_preset(preset)

    def extract(self, frame: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(frame[..., 0] > 128)
        centre = np.array([xs.mean(), ys.mean()]) / (SIZE / 2) - 1
        keypoints = np.tile(centre, 10) + np.linspace(-0.1, 0.1, 20)
        return np.concatenate([keypoints, np.tile([1.0, 0.0, 0.0, 1.0], 10)]).astype(np.float32)


class FakeRenderer:
    """Draws the reference darkened by the first keypoint's x, so output depends on motion."""

    def __init__(self, preset: str = "tiny", checkpoint=None, device=None) -> None:
        self.config = models.get_preset(preset)
        self.reference: np.ndarray | None = None
        self.styles: list[str | None] = []
        self.pictures: list[np.ndarray] = []

    def set_reference(self, image: np.ndarray) -> None:
        self.reference = image

    def set_style(self, prompt: str | None) -> Future:
        self.styles.append(prompt)
        future: Future = Future()
        future.set_result(prompt)
        return future

    def set_style_images(self, images: list[np.ndarray], name: str, cropper=None) -> Future:
        self.pictures = images
        self.styles.append(name)
        future: Future = Future()
        future.set_result(name)
        return future

    def render(self, features: np.ndarray) -> np.ndarray:
        assert self.reference is not None
        shade = 0.5 + 0.25 * float(features[0])
        return (self.reference * shade).astype(np.uint8)


@pytest.fixture
def fake_models(monkeypatch):
    monkeypatch.setattr(models, "MotionExtractor", FakeExtractor, raising=False)
    monkeypatch.setattr(models, "Renderer", FakeRenderer, raising=False)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    codec_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_encode_then_decode_round_trip(tmp_path, fake_models, capsys, caplog):
    clip, ccv, mp4, npy = (tmp_path / n for n in ("in.mp4", "out.ccv", "out.mp4", "f.npy"))
    _write_clip(clip)
    enc_stats, dec_stats = tmp_path / "enc.json", tmp_path / "dec.json"
    argv = [str(clip), "-o", str(ccv), "--prompt", "sketch", "--stats-json", str(enc_stats)]
    assert _run(["encode", *argv]) == 0
    stats = json.loads(enc_stats.read_text())
    for key in ("frames", "payload_bytes", "header_bytes", "payload_kbps", "total_kbps"):
        assert key in stats
    assert stats["frames"] == 12 and stats["fps"] == 25.0 and stats["keyframe_bytes"] > 0
    assert stats["header_bytes"] == 6 * 12
    assert "in.mp4: no face detected in 12 of 12 frames: coded the centre square" in caplog.text
    assert stats["keypoint_error_px_max"] <= 256 / 128 / 2 + 1e-6

    stored = read_container(ccv)
    assert stored.prompt == "sketch" and len(stored.packets) == 12
    assert decode_keyframe(stored.keyframe).shape == (SIZE, SIZE, 3)

    assert _run(["decode", str(ccv), "-o", str(npy), "--features-only"]) == 0
    features = np.load(npy)
    assert features.shape == (12, 60)
    assert features[-1, 0] > features[0, 0]  # the square moved right

    assert _run(["decode", str(ccv), "-o", str(mp4), "--stats-json", str(dec_stats)]) == 0
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (SIZE, SIZE, 3)
    assert frames[-1].mean() > frames[0].mean()
    decoded = json.loads(dec_stats.read_text())
    assert decoded["decoded"] == 12 and decoded["dropped"] == {}
    assert decoded["payload_bytes"] == stats["payload_bytes"]
    capsys.readouterr()


def test_decode_refuses_a_corrupt_file(tmp_path, fake_models, caplog):
    bad = tmp_path / "bad.ccv"
    bad.write_bytes(b"CCV1\x02garbage")
    assert _run(["decode", str(bad), "-o", str(tmp_path / "x.npy")]) == 1
    assert "header length 1734439522 exceeds" in caplog.text


def test_encode_refuses_a_file_that_is_not_a_video(tmp_path, fake_models, caplog):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    assert _run(["encode", str(bad), "-o", str(tmp_path / "x.ccv")]) == 1
    assert "cannot open video" in caplog.text


class StylelessRenderer(FakeRenderer):
    def set_style(self, prompt: str | None) -> Future:
        raise ValueError(f"no built-in style matches {prompt!r}")


def test_unknown_style_renders_unstyled_with_a_warning(tmp_path, fake_models, monkeypatch, caplog):
    clip, ccv, mp4 = tmp_path / "in.mp4", tmp_path / "out.ccv", tmp_path / "out.mp4"
    _write_clip(clip, frames=4)
    assert _run(["encode", str(clip), "-o", str(ccv), "--prompt", "plaid"]) == 0
    monkeypatch.setattr(models, "Renderer", StylelessRenderer)
    assert _run(["decode", str(ccv), "-o", str(mp4)]) == 0
    assert "rendering without style: no built-in style matches 'plaid'" in caplog.text


def _picture(path, colour: tuple[int, int, int]) -> None:
    image = np.zeros((700, 300, 3), np.uint8)
    image[:] = colour
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_style_pictures_travel_in_the_ccv_and_decode_adapts_to_them(
    tmp_path, fake_models, monkeypatch, caplog
):
    clip, ccv, mp4, folder = (tmp_path / n for n in ("in.mp4", "out.ccv", "out.mp4", "pics"))
    _write_clip(clip, frames=3)
    folder.mkdir()
    _picture(folder / "a.png", (200, 30, 30))
    _picture(folder / "b.jpg", (30, 30, 200))
    _picture(tmp_path / "c.png", (30, 200, 30))
    argv = ["encode", str(clip), "-o", str(ccv), "--style-image", str(folder)]
    assert _run([*argv, "--style-image", str(tmp_path / "c.png")]) == 0
    stored = read_container(ccv)
    assert len(stored.style_images) == 3 and stored.prompt is None
    renderers: list[FakeRenderer] = []

    def build(**_: object) -> FakeRenderer:
        renderers.append(FakeRenderer())
        return renderers[-1]

    monkeypatch.setattr(models, "Renderer", build)
    assert _run(["decode", str(ccv), "-o", str(mp4)]) == 0
    (renderer,) = renderers
    assert renderer.styles == [picture_style_name(stored.style_images)]
    assert [p.shape for p in renderer.pictures] == [(512, 219, 3)] * 3
    assert [tuple(p[100, 100]) for p in renderer.pictures][0] == pytest.approx((200, 30, 30), abs=4)


def test_a_corrupt_style_picture_in_a_ccv_renders_unstyled_with_a_warning(
    tmp_path, fake_models, caplog
):
    clip, ccv, mp4 = tmp_path / "in.mp4", tmp_path / "out.ccv", tmp_path / "out.mp4"
    _write_clip(clip, frames=3)
    _picture(tmp_path / "a.png", (200, 30, 30))
    assert (
        _run(["encode", str(clip), "-o", str(ccv), "--style-image", str(tmp_path / "a.png")]) == 0
    )
    stored = read_container(ccv)
    write_container(ccv, CcvFile(**{**vars(stored), "style_images": [b"GIF89a broken"]}))
    assert _run(["decode", str(ccv), "-o", str(mp4)]) == 0
    assert "rendering without style: style picture 1 of the stream: not a readable picture" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--style-image", "nope.png"], "nope.png: no such file or folder"),
        (["--style-image", "notes.png"], "notes.png: not a readable picture"),
    ],
)
def test_encode_refuses_bad_style_pictures_with_one_line(
    tmp_path, fake_models, caplog, monkeypatch, extra, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.png").write_text("plain text")
    _write_clip(tmp_path / "in.mp4", frames=2)
    assert _run(["encode", "in.mp4", "-o", "out.ccv", *extra]) == 1
    assert f"encode failed: {message}" in caplog.text and not (tmp_path / "out.ccv").exists()


def test_encode_refuses_a_prompt_and_style_pictures_together(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _run(["encode", "in.mp4", "-o", "o.ccv", "--prompt", "x", "--style-image", "a.png"])
    assert "not allowed with argument --prompt" in capsys.readouterr().err


class FiveKeypointRenderer(FakeRenderer):
    def __init__(self, preset: str = "tiny", checkpoint=None, device=None) -> None:
        super().__init__(preset)
        self.config = models.get_preset(preset, num_kp=5)


def test_decode_refuses_a_stream_of_another_motion_layout(
    tmp_path, fake_models, monkeypatch, caplog
):
    clip, ccv, mp4 = tmp_path / "in.mp4", tmp_path / "out.ccv", tmp_path / "out.mp4"
    _write_clip(clip, frames=2)
    assert _run(["encode", str(clip), "-o", str(ccv)]) == 0
    monkeypatch.setattr(models, "Renderer", FiveKeypointRenderer)
    assert _run(["decode", str(ccv), "-o", str(mp4)]) == 1
    assert "motion layout (60 numbers a frame, preset lite-128) is not the renderer's (30)" in (
        caplog.text
    )
    assert not mp4.exists()
