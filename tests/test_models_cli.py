from pathlib import Path

import cv2
import numpy as np
import pytest

from cartooncodec import cli
from models.checkpoint import build_models, save_checkpoint
from models.config import get_preset
from models.renderer import Renderer
from tests.face_clip import portrait
from tests.models_helpers import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", build_models(get_preset("tiny")))
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    stripes = np.zeros((48, 48, 3), np.uint8)
    stripes[:, ::4] = (20, 120, 240)
    cv2.imwrite(str(pictures / "a.png"), stripes)
    cv2.imwrite(str(pictures / "b.jpg"), stripes[::-1])
    face = tmp_path / "face.jpg"
    cv2.imwrite(str(face), cv2.cvtColor(portrait(), cv2.COLOR_RGB2BGR))
    return {"checkpoint": checkpoint, "pictures": pictures, "face": face, "cache": tmp_path / "c"}


def _argv(setup: dict[str, Path], name: str, *images: Path) -> list[str]:
    return [
        "style",
        "add",
        name,
        "--images",
        *map(str, images or [setup["pictures"]]),
        "--face",
        str(setup["face"]),
        "--style-cache",
        str(setup["cache"]),
        "--preset",
        "tiny",
        "--checkpoint",
        str(setup["checkpoint"]),
        "--device",
        "cpu",
        "--steps",
        "2",
    ]


def test_style_add_caches_a_style_a_renderer_finds_by_name(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(_argv(setup, "Orange Stripes")) == 0
    out, err = capsys.readouterr()
    assert out.startswith("style 'orange stripes': 2 pictures, 2 steps, ")
    assert "adapting 'orange stripes':   0%| " in err and " 0/2 [" in err  # the progress bar
    with Renderer("tiny", setup["checkpoint"], "cpu", style_cache_dir=setup["cache"]) as renderer:
        delta = renderer.known_style("orange  stripes")
    assert delta is not None and delta.deltas


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("pencil sketch", None, "selects the built-in style 'sketch'; choose another name"),
        ("mine", b"not a picture at all", "notes.png: not a readable picture"),
        ("mine", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "bad.png: not a readable picture"),
    ],
)
def test_style_add_refuses_with_one_line(
    setup: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    message: str,
) -> None:
    images: list[Path] = []
    if content is not None:
        bad = setup["pictures"] / ("notes.png" if b"PNG" not in content else "bad.png")
        bad.write_bytes(content)
        images = [bad]
    assert cli.main(_argv(setup, name, *images)) == 1
    err = capsys.readouterr().err
    assert err.startswith("cartooncodec style: error: ") and message in err
    assert err.count("\n") == 1
    assert not setup["cache"].exists()


def test_style_add_needs_a_cache_folder(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARTOONCODEC_STYLE_CACHE", raising=False)
    argv = _argv(setup, "mine")
    del argv[argv.index("--style-cache") : argv.index("--style-cache") + 2]
    assert cli.main(argv) == 1
    assert "give --style-cache DIR" in capsys.readouterr().err
