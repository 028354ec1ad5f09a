from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.checkpoint import (
    CheckpointError,
    build_models,
    default_checkpoint_path,
    load_checkpoint,
    load_models,
    save_checkpoint,
)
from models.checkpoint_option import RANDOM_WEIGHTS, RANDOM_WEIGHTS_ENV
from models.config import get_preset
from models.keypoint_detector import KPDetector
from models.style_delta import StyleDelta
from tests.models_helpers import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")

# Keys and shapes of the released first-order-model vox-256 checkpoint (a sample per network).
FOMM_VOX_256_KEYS = {
    "kp_detector": {
        "predictor.encoder.down_blocks.0.conv.weight": (64, 3, 3, 3),
        "predictor.decoder.up_blocks.0.conv.weight": (512, 1024, 3, 3),
        "predictor.decoder.up_blocks.4.norm.running_var": (32,),
        "kp.weight": (10, 35, 7, 7),
        "jacobian.weight": (40, 35, 7, 7),
        "down.weight": (3, 1, 13, 13),
    },
    "generator": {
        "first.conv.weight": (64, 3, 7, 7),
        "down_blocks.1.conv.weight": (256, 128, 3, 3),
        "bottleneck.r5.conv2.weight": (256, 256, 3, 3),
        "up_blocks.1.norm.weight": (64,),
        "final.weight": (3, 64, 7, 7),
        "dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight": (128, 44, 3, 3),
        "dense_motion_network.mask.weight": (11, 108, 7, 7),
        # One occlusion channel per generator scale (the published file has 1: see below).
        "dense_motion_network.occlusion.weight": (3, 108, 7, 7),
        "dense_motion_network.down.weight": (3, 1, 13, 13),
    },
}


def _randomised(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        k: torch.randn_like(v) if v.is_floating_point() else v.clone() for k, v in state.items()
    }


def _fomm_file(path: Path, preset: str) -> dict[str, dict[str, torch.Tensor]]:
    """A file laid out like a released FOMM checkpoint (plus its training entries)."""
    models = build_models(get_preset(preset))
    states = {
        "kp_detector": _randomised(models.kp_detector.state_dict()),
        "generator": _randomised(models.generator.state_dict()),
    }
    torch.save({**states, "discriminator": {}, "optimizer_generator": {}, "epoch": 99}, path)
    return states


def test_full_preset_has_the_published_key_layout() -> None:
    models = build_models(get_preset("full-256"))
    for part, module in (("kp_detector", models.kp_detector), ("generator", models.generator)):
        state = module.state_dict()
        for key, shape in FOMM_VOX_256_KEYS[part].items():
            assert tuple(state[key].shape) == shape, (part, key)


def test_fomm_layout_file_loads_into_full_256_with_equal_values(tmp_path: Path) -> None:
    path = tmp_path / "vox-cpk.pth.tar"
    states = _fomm_file(path, "full-256")
    models = load_checkpoint(path)
    assert models.config.name == "full-256"
    for part, module in (("kp_detector", models.kp_detector), ("generator", models.generator)):
        loaded = module.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in states[part].items()), part


def test_a_published_first_order_generator_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "vox-cpk.pth.tar"
    states = _fomm_file(path, "full-256")
    states["generator"]["dense_motion_network.occlusion.weight"] = torch.zeros(1, 108, 7, 7)
    torch.save(states, path)
    with pytest.raises(
        CheckpointError, match=r"occlusion.weight' has shape \(1, 108, 7, 7\).*--init-from"
    ):
        load_checkpoint(path)


def test_a_checkpoint_of_the_previous_generator_is_refused_by_architecture(tmp_path: Path) -> None:
    path = tmp_path / "old-lite.pt"
    models = build_models(get_preset("tiny"))
    save_checkpoint(path, models)
    data = torch.load(path, weights_only=True)
    del data["config"]["generator"]["architecture"]  # as files written before the field
    torch.save(data, path)
    message = rf"{path} holds a 'first-order' generator; this version builds 'skip-warp-residual'"
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_data_parallel_prefix_and_missing_batch_counters_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    models = build_models(get_preset("tiny"))
    generator = {
        f"module.{k}": v
        for k, v in models.generator.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    torch.save({"generator": generator, "kp_detector": models.kp_detector.state_dict()}, path)
    assert load_checkpoint(path, "tiny").config.name == "tiny"


def test_mismatched_file_is_refused_naming_file_and_first_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    models = build_models(get_preset("tiny"))
    generator = models.generator.state_dict()
    del generator["final.bias"]
    torch.save({"generator": generator, "kp_detector": models.kp_detector.state_dict()}, path)
    with pytest.raises(CheckpointError, match=f"{path}: generator is missing key 'final.bias'"):
        load_checkpoint(path, "tiny")
    generator = {**models.generator.state_dict(), "extra.weight": torch.zeros(1)}
    torch.save({"generator": generator, "kp_detector": models.kp_detector.state_dict()}, path)
    with pytest.raises(CheckpointError, match="has unexpected key 'extra.weight'"):
        load_checkpoint(path, "tiny")


def test_file_of_another_preset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    _fomm_file(path, "tiny")
    message = f"{path}: kp_detector is missing key .*another preset"
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, "lite-128")
    save_checkpoint(path, build_models(get_preset("tiny")))
    with pytest.raises(CheckpointError, match="is for preset 'tiny', not 'lite-128'"):
        load_checkpoint(path, "lite-128")


def test_an_older_file_of_the_same_preset_is_refused_naming_what_changed(tmp_path: Path) -> None:
    tiny = get_preset("tiny")
    older = replace(tiny, generator=replace(tiny.generator, num_bottleneck_blocks=3))
    path = tmp_path / "older-tiny.pt"
    save_checkpoint(path, build_models(older))
    message = (
        f"checkpoint {path} holds an older tiny with other sizes: "
        "generator.num_bottleneck_blocks 3 (this version: 1); use the shipped checkpoint or "
        f"start a run from it: cartooncodec train --init-from {path}"
    )
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path, "tiny")
    assert str(refused.value) == message
    assert load_checkpoint(path).config == older  # without a preset it loads as what it is


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a torch file", "is not a readable torch file"),
        (b"", "is not a readable torch file"),
    ],
)
def test_corrupt_file_is_refused_naming_it(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} {message}"):
        load_checkpoint(path)


def test_truncated_file_missing_file_and_foreign_dict_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, build_models(get_preset("tiny")))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=f"checkpoint {truncated} is not a readable"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="has no 'generator' and 'kp_detector'.*state_dict"):
        load_checkpoint(path)


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.pt"
    models = build_models(get_preset("tiny"))
    generator = models.generator.state_dict()
    generator["final.weight"] = torch.full_like(generator["final.weight"], float("nan"))
    torch.save({"generator": generator, "kp_detector": models.kp_detector.state_dict()}, path)
    with pytest.raises(CheckpointError, match="'final.weight' contains NaN"):
        load_checkpoint(path, "tiny")


def test_our_format_round_trips_weights_styles_and_meta(tmp_path: Path) -> None:
    models = build_models(get_preset("tiny"))
    weight = models.generator.final.weight
    style = StyleDelta("sketch", ("final",), {"final.weight": torch.randn_like(weight)})
    path = save_checkpoint(tmp_path / "ours.pt", models, styles={"sketch": style}, meta={"s": 3})
    loaded = load_checkpoint(path)
    assert loaded.config == models.config and loaded.meta == {"s": 3} and loaded.path == path
    assert torch.equal(loaded.generator.final.weight, weight)
    assert loaded.styles["sketch"].layers == ("final",)
    assert torch.equal(loaded.styles["sketch"].deltas["final.weight"], style.deltas["final.weight"])


def test_a_structure_detector_round_trips_and_is_optional(tmp_path: Path) -> None:
    models = build_models(get_preset("tiny"))
    plain = load_checkpoint(save_checkpoint(tmp_path / "plain.pt", models))
    assert plain.structure_detector is None and plain.structure is plain.kp_detector
    models.structure_detector = KPDetector(models.config).eval()
    with torch.no_grad():
        models.structure_detector.kp.bias.add_(0.5)  # unlike the keypoint detector
    loaded = load_checkpoint(save_checkpoint(tmp_path / "with.pt", models))
    assert loaded.structure is loaded.structure_detector
    bias = loaded.structure.kp.bias
    assert torch.equal(bias, models.structure_detector.kp.bias)
    assert not torch.equal(bias, loaded.kp_detector.kp.bias)
    assert not any(p.requires_grad for p in loaded.structure.parameters())


def test_a_structure_detector_of_another_size_is_refused_by_name(tmp_path: Path) -> None:
    models = build_models(get_preset("tiny"))
    path = save_checkpoint(tmp_path / "ours.pt", models)
    data = torch.load(path, weights_only=True)
    data["structure_detector"] = {**data["kp_detector"], "kp.bias": torch.zeros(3)}
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="structure_detector key 'kp.bias' has shape"):
        load_checkpoint(path)


def test_half_precision_file_is_smaller_and_close(tmp_path: Path) -> None:
    models = build_models(get_preset("tiny"))
    full = save_checkpoint(tmp_path / "full.pt", models)
    half = save_checkpoint(tmp_path / "half.pt", models, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_checkpoint(half)
    assert loaded.generator.final.weight.dtype == torch.float32
    assert torch.allclose(loaded.generator.final.weight, models.generator.final.weight, atol=1e-3)


def test_style_for_a_missing_parameter_is_refused(tmp_path: Path) -> None:
    models = build_models(get_preset("tiny"))
    style = StyleDelta("x", ("nope",), {"nope.weight": torch.zeros(1)})
    path = save_checkpoint(tmp_path / "bad-style.pt", models, styles={"x": style})
    with pytest.raises(CheckpointError, match="style 'x': the generator has no parameter"):
        load_checkpoint(path)


def test_a_missing_checkpoint_is_an_error_naming_the_file_and_the_way_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(RANDOM_WEIGHTS_ENV)
    with pytest.raises(CheckpointError) as refused:
        load_models("tiny")
    message = str(refused.value)
    assert str(default_checkpoint_path("tiny")) in message
    assert "--checkpoint FILE" in message and "--random-weights" in message


def test_random_weights_only_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(RANDOM_WEIGHTS_ENV)
    asked = load_models("tiny", RANDOM_WEIGHTS)
    assert asked.path is None and asked.config == get_preset("tiny")
    assert "preset 'tiny' with random weights: its output is noise" in caplog.text
    monkeypatch.setenv(RANDOM_WEIGHTS_ENV, "1")  # as the test suite runs
    assert load_models("tiny").path is None
    assert load_models("lite-128").path == default_checkpoint_path("lite-128")  # shipped: used
