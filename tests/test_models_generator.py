from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.blocks import make_coordinate_grid
from models.config import ModelConfig, get_preset
from models.generator import (
    OcclusionAwareGenerator,
    reference_style_layer_names,
    style_layer_names,
    warp_by_offset,
)
from models.keypoint_detector import KPDetector
from tests.models_helpers import face_like_frame, single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


def _face_like_image() -> torch.Tensor:
    """1x3x32x32 in [0, 1]."""
    return torch.from_numpy(face_like_frame().astype(np.float32) / 255).permute(2, 0, 1)[None]


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


def test_untrained_generator_at_zero_motion_returns_the_reference() -> None:
    config = get_preset("tiny")
    generator, detector = OcclusionAwareGenerator(config).eval(), KPDetector(config).eval()
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        kp = detector(image)
        out = generator(image, kp, kp)
    assert float(out["residual"].abs().max()) == 0.0
    torch.testing.assert_close(out["deformed"], image, atol=1e-4, rtol=0)
    torch.testing.assert_close(out["prediction"], image, atol=1e-4, rtol=0)


def finished_tiny() -> ModelConfig:
    """The tiny preset with a style finish of 4 channels (lite-128 has 16)."""
    tiny = get_preset("tiny")
    return replace(tiny, generator=replace(tiny.generator, style_finish_channels=4))


def _trained_to_grey(module: torch.nn.Module, image: torch.Tensor, lr: float) -> torch.Tensor:
    """Train ``module`` (a style-only part) for 150 Adam steps to turn ``image`` grey; returns
    that grey image."""
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    grey = image.mean(dim=1, keepdim=True).expand_as(image)
    for _ in range(150):
        optimizer.zero_grad()
        F.l1_loss(module(image), grey).backward()
        optimizer.step()
    return grey


def test_the_style_finish_is_the_identity_until_a_style_changes_it() -> None:
    """Base weights: the finish changes nothing (zero motion still returns the reference). A
    delta on its layers (which are style layers) changes every pixel it likes, at full
    resolution: here, grey."""
    generator, detector = (
        OcclusionAwareGenerator(finished_tiny()).eval(),
        KPDetector(finished_tiny()).eval(),
    )
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        kp = detector(image)
        torch.testing.assert_close(generator(image, kp, kp)["prediction"], image, atol=1e-4, rtol=0)
    assert {"finish.inner", "finish.wide", "finish.out"} <= set(style_layer_names(generator))
    finish = generator.finish
    assert finish is not None
    grey = _trained_to_grey(finish, image, lr=0.02)
    with torch.no_grad():
        styled = generator(image, kp, kp)["prediction"]
    # every pixel nearer its grey than the photograph's own colours are
    assert float((styled - grey).abs().mean()) < 0.5 * float((image - grey).abs().mean())


def test_the_reference_style_restyles_the_reference_once_and_leaves_the_motion_alone() -> None:
    """Base weights: the reference style changes nothing. Trained (here, to grey), every frame
    shows the restyled reference: the warped reference is most of the picture. The dense motion
    network still sees the photograph, so the motion is the same with and without the style."""
    tiny = get_preset("tiny")
    config = replace(tiny, generator=replace(tiny.generator, style_reference_channels=4))
    generator, detector = OcclusionAwareGenerator(config).eval(), KPDetector(config).eval()
    image = _face_like_image().repeat(2, 1, 1, 1)
    image[1] = image[1].flip(-1)
    with torch.no_grad():
        kp = detector(image)
        moved = {"value": kp["value"] * 0.9, "jacobian": kp["jacobian"]}
        plain = generator(image, moved, kp)
        torch.testing.assert_close(generator(image, kp, kp)["prediction"], image, atol=1e-4, rtol=0)
    assert reference_style_layer_names(generator) == [
        f"restyle.{name}"
        for name in ("inner", "down1", "down2", "middle1", "middle2", "up2", "up1", "out")
    ]
    assert set(reference_style_layer_names(generator)) <= set(style_layer_names(generator))
    restyle = generator.restyle
    assert restyle is not None
    grey = _trained_to_grey(restyle, image, lr=0.01)
    with torch.no_grad():
        still = generator(image, kp, kp)["prediction"]
        styled = generator(image, moved, kp)
    # at zero motion every pixel nearer its grey than the photograph's own colours are
    assert float((still - grey).abs().mean()) < 0.5 * float((image - grey).abs().mean())
    torch.testing.assert_close(styled["deformation"], plain["deformation"])
    torch.testing.assert_close(styled["occlusion_map"], plain["occlusion_map"])
    assert not torch.allclose(styled["prediction"], plain["prediction"], atol=0.05)


def test_a_one_pixel_offset_translates_the_reference_at_full_resolution() -> None:
    image = _face_like_image()
    offset = torch.zeros(1, 2, 8, 8)  # a coarse flow field, as the dense motion gives
    offset[:, 0] = -2.0 / 31  # sample one pixel to the left (32 px in [-1, 1])
    shifted = warp_by_offset(image, offset)
    torch.testing.assert_close(shifted[..., 1:], image[..., :-1], atol=1e-5, rtol=0)


def test_the_residual_learns_what_the_warp_cannot_show() -> None:
    config = get_preset("tiny")
    generator, detector = OcclusionAwareGenerator(config), KPDetector(config)
    image = _face_like_image()
    target = 1.0 - image  # nothing in the reference, at zero motion, looks like this
    optimizer = torch.optim.Adam([*generator.parameters(), *detector.parameters()], lr=2e-3)

    def error() -> float:
        generator.eval(), detector.eval()
        with torch.no_grad():
            kp = detector(image)
            return float((generator(image, kp, kp)["prediction"] - target).abs().mean())

    before = error()
    for _ in range(60):
        generator.train(), detector.train()
        kp = detector(image)
        loss = (generator(image, kp, kp)["prediction"] - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = error()
    assert before > 0.3
    assert after < 0.5 * before, (before, after)


def test_warp_by_a_zero_offset_is_the_identity_at_any_size() -> None:
    image = torch.rand(1, 4, 20, 28)
    torch.testing.assert_close(warp_by_offset(image, torch.zeros(1, 2, 5, 7)), image)


def test_style_layers_are_the_image_pathway_only() -> None:
    names = style_layer_names(OcclusionAwareGenerator(get_preset("tiny")))
    assert "first.conv" in names and "final" in names and "bottleneck.r0.conv1" in names
    assert not any(name.startswith("dense_motion_network") for name in names)


def _with_residual_downscale(levels: int) -> ModelConfig:
    config = get_preset("tiny")
    return replace(config, generator=replace(config.generator, residual_downscale=levels))


def test_a_half_size_residual_keeps_zero_motion_the_reference_and_skips_full_size() -> None:
    config = _with_residual_downscale(1)
    generator, detector = OcclusionAwareGenerator(config).eval(), KPDetector(config).eval()
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        kp = detector(image)
        out = generator(image, kp, kp)
    assert len(generator.up_blocks) == 0  # tiny has one down block: the residual is at 16x16
    assert generator.final.in_channels == 2 * config.generator.block_expansion  # 16x16 width
    torch.testing.assert_close(out["prediction"], image, atol=1e-4, rtol=0)


def test_a_half_size_residual_is_painted_at_half_size_and_upsampled() -> None:
    generator = OcclusionAwareGenerator(_with_residual_downscale(1)).eval()
    torch.nn.init.normal_(generator.final.weight, std=0.05)
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        features = generator.encode_source(image)
        motion = {"deformation": make_coordinate_grid(8, 8, image.dtype, image.device)[None]}
        _, _, residual = generator._decode(features, motion)
        half = generator.final(generator.bottleneck(features[-1]))
    expected = F.interpolate(half, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(residual, expected, atol=1e-5, rtol=0)


def test_a_residual_below_the_bottleneck_is_refused() -> None:
    message = r"residual_downscale 2 must be in 0..num_down_blocks \(1\)"
    with pytest.raises(ValueError, match=message):
        OcclusionAwareGenerator(_with_residual_downscale(2))
