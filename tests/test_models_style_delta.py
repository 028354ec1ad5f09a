import logging
from pathlib import Path

import pytest
import torch

from models.config import get_preset
from models.generator import OcclusionAwareGenerator
from models.style_delta import (
    StyleCache,
    StyleDelta,
    StyleSwitch,
    load_style_delta,
    weights_fingerprint,
)
from tests.models_helpers import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


def _generator() -> OcclusionAwareGenerator:
    return OcclusionAwareGenerator(get_preset("tiny")).eval()


def _delta(generator: OcclusionAwareGenerator, prompt: str, scale: float = 0.1) -> StyleDelta:
    names = ["final.weight", "final.bias", "up_blocks.0.conv.weight"]
    params = dict(generator.named_parameters())
    deltas = {name: scale * torch.randn_like(params[name]) for name in names}
    return StyleDelta(prompt, ("final", "up_blocks.0.conv"), deltas)


def _snapshot(generator: OcclusionAwareGenerator) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in generator.named_parameters()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_applied_changes_only_delta_parameters_and_restores_exactly() -> None:
    generator = _generator()
    before = _snapshot(generator)
    delta = _delta(generator, "ink")
    with delta.applied(generator):
        during = _snapshot(generator)
        changed = {k for k in before if not torch.equal(before[k], during[k])}
        assert changed == set(delta.deltas)
        expected = before["final.weight"] + delta.deltas["final.weight"]
        assert torch.allclose(during["final.weight"], expected)
    assert _equal(_snapshot(generator), before)


def test_switch_restores_base_exactly_after_many_swaps() -> None:
    generator = _generator()
    before = _snapshot(generator)
    first, second = _delta(generator, "a"), _delta(generator, "b", scale=3.0)
    switch = StyleSwitch(generator)
    for _ in range(50):
        switch.apply(first)
        switch.apply(second)
    assert switch.active is second
    assert torch.equal(
        generator.final.weight, before["final.weight"] + second.deltas["final.weight"]
    )
    switch.apply(None)
    assert _equal(_snapshot(generator), before)


def test_delta_of_wrong_shape_or_name_is_refused() -> None:
    generator = _generator()
    wrong_shape = StyleDelta("x", ("final",), {"final.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"delta for final.weight has shape \(2,\)"):
        StyleSwitch(generator).apply(wrong_shape)
    unknown = StyleDelta("x", ("nope",), {"nope.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match="has no parameter 'nope.weight'"):
        StyleSwitch(generator).apply(unknown)


def test_from_dict_refuses_malformed_entries() -> None:
    with pytest.raises(ValueError, match="expected a dict with prompt, layers and deltas"):
        StyleDelta.from_dict({"prompt": "x"}, "style 'x'")
    with pytest.raises(ValueError, match="deltas must map parameter names to tensors"):
        StyleDelta.from_dict({"prompt": "x", "layers": [], "deltas": {"a": 1}})
    with pytest.raises(ValueError, match="delta for a contains NaN"):
        StyleDelta.from_dict(
            {"prompt": "x", "layers": [], "deltas": {"a": torch.tensor([float("nan")])}}
        )


def test_cache_disk_round_trip_is_exact(tmp_path: Path) -> None:
    generator = _generator()
    delta = _delta(generator, "ink drawing")
    namespace = weights_fingerprint(generator)
    StyleCache(tmp_path, namespace).put("Ink  Drawing", delta)
    loaded = StyleCache(tmp_path, namespace).get("ink drawing")
    assert loaded is not None
    assert loaded.prompt == "ink drawing" and loaded.layers == delta.layers
    assert _equal(loaded.deltas, delta.deltas)


def test_cache_keeps_namespaces_apart_and_misses_unknown_prompts(tmp_path: Path) -> None:
    generator = _generator()
    StyleCache(tmp_path, "weights-a").put("ink", _delta(generator, "ink"))
    assert StyleCache(tmp_path, "weights-b").get("ink") is None
    assert StyleCache(tmp_path, "weights-a").get("oil") is None
    assert "ink" in StyleCache(tmp_path, "weights-a")


def test_memory_only_cache_writes_nothing(tmp_path: Path) -> None:
    cache = StyleCache()
    delta = _delta(_generator(), "ink")
    cache.put("ink", delta)
    assert cache.get("INK") is delta and cache.path_for("ink") is None


def test_damaged_cache_file_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = StyleCache(tmp_path, "w")
    cache.put("ink", _delta(_generator(), "ink"))
    path = cache.path_for("ink")
    assert path is not None
    path.write_bytes(b"\x00" * 40)
    with caplog.at_level(logging.WARNING):
        assert StyleCache(tmp_path, "w").get("ink") is None
    assert f"{path}: not a readable style delta file" in caplog.text


def test_load_style_delta_names_the_file_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=f"{path}: not a readable style delta file"):
        load_style_delta(path)
    cache = StyleCache(tmp_path, "w")
    cache.put("ink", _delta(_generator(), "ink"))
    written = cache.path_for("ink")
    assert written is not None
    with pytest.raises(ValueError, match="holds prompt 'ink', not 'oil'"):
        load_style_delta(written, expected_prompt="oil")
    with pytest.raises(ValueError, match="adapted for other base weights"):
        load_style_delta(written, expected_namespace="other")


def test_fingerprint_changes_with_the_weights() -> None:
    generator = _generator()
    before = weights_fingerprint(generator)
    with _delta(generator, "x").applied(generator):
        assert weights_fingerprint(generator) != before
    assert weights_fingerprint(generator) == before
