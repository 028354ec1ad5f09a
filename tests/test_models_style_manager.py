"""StyleManager: prompts to styles, one cache and one CLIP for every renderer of a server."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from models import style_manager
from models.checkpoint import build_models
from models.config import get_preset
from models.inference import InferenceWrapper
from models.layer_selection import AdaptationConfig
from models.style_delta import StyleDelta, weights_fingerprint
from models.style_manager import NO_STYLE, StyleManager
from models.text_encoder import ClipGuide, tiny_clip
from tests.models_helpers import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def wrapper() -> InferenceWrapper:
    models = build_models(get_preset("tiny"))
    weight = models.generator.final.weight
    models.styles = {"sketch": StyleDelta("sketch", ("final",), {"final.weight": weight * 0})}
    return InferenceWrapper("tiny", device="cpu", models=models)


def test_prompts_resolve_to_builtin_styles_or_are_refused(wrapper: InferenceWrapper) -> None:
    styles = StyleManager(wrapper)
    assert styles.resolve(None) == (NO_STYLE, None)
    assert styles.resolve("  None ") == (NO_STYLE, None)
    assert styles.resolve("a pencil sketch") == ("sketch", wrapper.builtin_styles["sketch"])
    with pytest.raises(ValueError, match="got list"):
        styles.resolve([])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="201 characters; the limit is 200"):
        styles.resolve("x" * 201)
    with pytest.raises(ValueError, match="no CLIP weights.*built-in styles: sketch"):
        styles.resolve("a robot")


def test_clip_is_loaded_once_for_everyone(
    wrapper: InferenceWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    started = threading.Event()

    def slow_load(weights: str, model: str, device: torch.device) -> ClipGuide:
        loads.append(weights)
        started.wait(1.0)
        return tiny_clip()

    monkeypatch.setattr(style_manager, "load_clip", slow_load)
    styles = StyleManager(wrapper, clip_weights="clip.pt")
    with ThreadPoolExecutor(3) as pool:
        losses = [pool.submit(styles.clip_loss, "a robot") for _ in range(3)]
        started.set()
        assert all(callable(loss.result(timeout=30)) for loss in losses)
    assert loads == ["clip.pt"]


def test_adaptation_caches_its_style_and_leaves_the_served_weights_alone(
    wrapper: InferenceWrapper, tmp_path: Path
) -> None:
    before = weights_fingerprint(wrapper.generator)
    styles = StyleManager(
        wrapper,
        clip=tiny_clip(),
        style_cache_dir=tmp_path,
        adaptation=AdaptationConfig(steps=2, probe_steps=1),
    )
    assert styles.cache.namespace == wrapper.fingerprint
    delta = styles.adapt("a robot", None, lambda: False, styles.clip_loss("a robot"), 0.01)
    assert styles.lookup("A  Robot") == ("a robot", delta)
    assert len(delta.layers) == 4 and any(t.abs().max() > 0 for t in delta.deltas.values())
    assert weights_fingerprint(wrapper.generator) == before
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
