import numpy as np
import pytest
import torch

from models.config import get_preset
from models.generator import OcclusionAwareGenerator, style_layer_names
from models.keypoint_detector import KPDetector
from tests.models_helpers import face_like_frame, single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


def _face_like_image() -> torch.Tensor:
    """1x3x32x32 in [0, 1]."""
    return torch.from_numpy(face_like_frame().astype(np.float32) / 255).permute(2, 0, 1)[None]


def test_forward_shapes() -> None:
    config = get_preset("tiny")
    generator, detector = OcclusionAwareGenerator(config).eval(), KPDetector(config).eval()
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        kp = detector(image)
        out = generator(image, kp, kp)
    assert out["prediction"].shape == (2, 3, 32, 32)
    assert float(out["prediction"].min()) >= 0 and float(out["prediction"].max()) <= 1
    assert out["deformed"].shape == (2, 3, 32, 32)


def test_split_encode_decode_equals_forward() -> None:
    config = get_preset("tiny")
    generator, detector = OcclusionAwareGenerator(config).eval(), KPDetector(config).eval()
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        kp = detector(image)
        moved = {"value": kp["value"] * 0.9, "jacobian": kp["jacobian"]}
        whole = generator(image, moved, kp)["prediction"]
        motion = generator.dense_motion_network.predict(
            generator.dense_motion_network.downscale(image), moved, kp
        )
        split = generator.decode(generator.encode_source(image), motion)
    assert torch.allclose(whole, split, atol=1e-6)


def test_zero_motion_reproduces_the_reference_after_training_on_one_image() -> None:
    config = get_preset("tiny")
    generator, detector = OcclusionAwareGenerator(config), KPDetector(config)
    image = _face_like_image()
    optimizer = torch.optim.Adam([*generator.parameters(), *detector.parameters()], lr=2e-3)

    def reconstruction_error() -> float:
        generator.eval(), detector.eval()
        with torch.no_grad():
            kp = detector(image)
            return float((generator(image, kp, kp)["prediction"] - image).abs().mean())

    before = reconstruction_error()
    for _ in range(60):
        generator.train(), detector.train()
        kp = detector(image)
        loss = (generator(image, kp, kp)["prediction"] - image).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = reconstruction_error()
    assert before > 0.1
    assert after < 0.05, (before, after)


def test_style_layers_are_the_image_pathway_only() -> None:
    names = style_layer_names(OcclusionAwareGenerator(get_preset("tiny")))
    assert "first.conv" in names and "final" in names and "bottleneck.r0.conv1" in names
    assert not any(name.startswith("dense_motion_network") for name in names)
