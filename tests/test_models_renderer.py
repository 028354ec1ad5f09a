from collections.abc import Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models import config
from models.checkpoint import build_models, save_checkpoint
from models.config import get_preset
from models.inference import InferenceWrapper
from models.layer_selection import AdaptationConfig
from models.motion_features import pack_motion
from models.renderer import NO_STYLE, Renderer
from models.style_delta import StyleCache, StyleDelta
from models.style_manager import StyleManager
from models.text_encoder import tiny_clip
from tests.models_helpers import face_like_frame, single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A tiny checkpoint with built-in styles: two change the output layer, one the encoder."""
    models = build_models(get_preset("tiny"))
    weight = models.generator.final.weight
    styles = {
        name: StyleDelta(name, ("final",), {"final.weight": scale * torch.randn_like(weight)})
        for name, scale in (("sketch", 0.5), ("comic", 1.0))
    }
    first = models.generator.first.conv.weight
    styles["cel"] = StyleDelta(
        "cel", ("first.conv",), {"first.conv.weight": torch.randn_like(first)}
    )
    return save_checkpoint(tmp_path / "tiny.pt", models, styles=styles)


@pytest.fixture
def renderer(checkpoint: Path) -> Iterator[Renderer]:
    renderer = Renderer(preset="tiny", checkpoint=checkpoint, device="cpu")
    renderer.set_reference(face_like_frame(32))
    yield renderer
    renderer.close()


def _features(renderer: Renderer, shift: int = 0) -> np.ndarray:
    return renderer.extractor.extract(face_like_frame(32, shift))


def test_render_gives_a_frame_of_the_model_size(renderer: Renderer) -> None:
    frame = renderer.render(_features(renderer))
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    assert renderer.size == 32


def test_render_is_deterministic_and_follows_motion(renderer: Renderer) -> None:
    still = renderer.render(_features(renderer))
    assert np.array_equal(still, renderer.render(_features(renderer)))
    features = _features(renderer)
    features[:20] = np.clip(features[:20] + 0.3, -1, 1)
    assert not np.array_equal(still, renderer.render(features))


def test_builtin_style_resolves_changes_output_and_none_restores_it(renderer: Renderer) -> None:
    features = _features(renderer)
    plain = renderer.render(features)
    assert renderer.style_names() == ["cel", "comic", "sketch"]
    assert renderer.set_style("a pencil sketch").result(timeout=10) == "sketch"
    assert renderer.style_key == "sketch"
    sketched = renderer.render(features)
    assert not np.array_equal(plain, sketched)
    assert renderer.set_style("comic").result(timeout=10) == "comic"
    assert not np.array_equal(sketched, renderer.render(features))
    assert renderer.set_style(None).result(timeout=10) == NO_STYLE
    assert np.array_equal(plain, renderer.render(features))


def test_encoder_styles_and_new_references_re_encode_the_reference(renderer: Renderer) -> None:
    features = _features(renderer)
    renderer.set_style("cel").result(timeout=10)
    cel = renderer.render(features)
    renderer.set_style("comic").result(timeout=10)
    assert not np.array_equal(cel, renderer.render(features))
    renderer.set_style("cel").result(timeout=10)
    assert np.array_equal(cel, renderer.render(features))
    renderer.set_reference(face_like_frame(32, shift=6))
    assert not np.array_equal(cel, renderer.render(features))


def test_a_reference_style_restyles_every_frame_and_switches_back_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A style that changes only the reference style (here: a brighter reference) shows in
    every frame, since the reference is encoded through it; no style gives the plain frames."""
    tiny = config.PRESETS["tiny"]
    restyled = replace(tiny, generator=replace(tiny.generator, style_reference_channels=4))
    monkeypatch.setitem(config.PRESETS, "tiny", restyled)
    models = build_models(restyled)
    bias = models.generator.state_dict()["restyle.out.bias"]
    bright = StyleDelta(
        "sketch", ("restyle.out",), {"restyle.out.bias": torch.full_like(bias, 0.3)}
    )
    path = save_checkpoint(tmp_path / "tiny.pt", models, styles={"sketch": bright})
    with Renderer(preset="tiny", checkpoint=path, device="cpu") as renderer:
        renderer.set_reference(face_like_frame(32))
        still, moved = _features(renderer), _features(renderer, shift=2)
        plain = [renderer.render(still), renderer.render(moved)]
        renderer.set_style("sketch").result(timeout=10)
        for frame, before in zip(
            [renderer.render(still), renderer.render(moved)], plain, strict=True
        ):
            assert frame.astype(float).mean() > before.astype(float).mean() + 30
        renderer.set_style(None).result(timeout=10)
        assert np.array_equal(plain[0], renderer.render(still))


def test_unknown_prompt_without_clip_lists_the_builtin_styles(renderer: Renderer) -> None:
    message = (
        "no built-in style matches 'oil painting by a robot'.*built-in styles: cel, comic, sketch"
    )
    with pytest.raises(ValueError, match=message):
        renderer.set_style("oil painting by a robot")
    assert renderer.style_key == NO_STYLE


@pytest.mark.parametrize(
    ("prompt", "message"), [("x" * 201, "201 characters; the limit is 200"), (5, "got int")]
)
def test_bad_prompts_are_refused(renderer: Renderer, prompt: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        renderer.set_style(prompt)  # type: ignore[arg-type]


def test_bad_features_are_refused_before_the_network(renderer: Renderer) -> None:
    features = _features(renderer)
    features[7] = np.nan
    with pytest.raises(ValueError, match="NaN or inf \\(first at index 7\\)"):
        renderer.render(features)
    with pytest.raises(ValueError, match="shape \\(60,\\), got \\(20,\\)"):
        renderer.render(features[:20])


def test_render_before_a_reference_is_refused(checkpoint: Path) -> None:
    renderer = Renderer(preset="tiny", checkpoint=checkpoint, device="cpu")
    try:
        with pytest.raises(RuntimeError, match="call set_reference"):
            renderer.render(pack_motion(np.zeros((10, 2)), np.tile(np.eye(2), (10, 1, 1))))
    finally:
        renderer.close()


def test_new_prompt_adapts_with_clip_in_the_background_then_is_cached(
    checkpoint: Path, tmp_path: Path
) -> None:
    renderer = Renderer(
        preset="tiny",
        checkpoint=checkpoint,
        device="cpu",
        clip=tiny_clip(),
        style_cache_dir=tmp_path / "styles",
    )
    try:
        renderer.set_reference(face_like_frame(32))
        features = _features(renderer)
        plain = renderer.render(features)
        future = renderer.set_style("A Neon   Oil painting")
        assert future.result(timeout=120) == "a neon oil painting"
        styled = renderer.render(features)
        assert not np.array_equal(plain, styled)
        assert len(list((tmp_path / "styles").glob("*.safetensors"))) == 1
    finally:
        renderer.close()
    # A later session finds it on disk and needs no CLIP for it.
    again = Renderer(
        preset="tiny", checkpoint=checkpoint, device="cpu", style_cache_dir=tmp_path / "styles"
    )
    try:
        again.set_reference(face_like_frame(32))
        assert again.set_style("a neon oil painting").result(timeout=10) == "a neon oil painting"
        assert np.array_equal(styled, again.render(features))
    finally:
        again.close()


def test_a_newer_prompt_cancels_the_pending_one(checkpoint: Path) -> None:
    renderer = Renderer(preset="tiny", checkpoint=checkpoint, device="cpu", clip=tiny_clip())
    try:
        renderer.set_reference(face_like_frame(32))
        slow = renderer.set_style("a neon oil painting")
        assert renderer.set_style("comic").result(timeout=60) == "comic"
        with pytest.raises(CancelledError):
            slow.result(timeout=60)
        assert renderer.style_key == "comic"
    finally:
        renderer.close()


def test_failed_adaptation_reaches_the_caller(checkpoint: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing-clip.pt"
    with Renderer(preset="tiny", checkpoint=checkpoint, device="cpu", clip_weights=missing) as r:
        future = r.set_style("a neon oil painting")
        with pytest.raises(ValueError, match=f"CLIP weights file {missing} does not exist"):
            future.result(timeout=60)
        assert r.style_key == NO_STYLE


def test_close_stops_a_running_adaptation(checkpoint: Path) -> None:
    renderer = Renderer(preset="tiny", checkpoint=checkpoint, device="cpu", clip=tiny_clip())
    renderer.adaptation = AdaptationConfig(steps=100_000)
    renderer.set_reference(face_like_frame(32))
    future = renderer.set_style("a neon oil painting")
    renderer.close()  # returns once the adaptation thread has stopped
    assert future.cancelled()
    assert renderer.style_key == NO_STYLE


def test_a_prompt_before_the_reference_adapts_on_a_grey_frame(checkpoint: Path) -> None:
    with Renderer(preset="tiny", checkpoint=checkpoint, device="cpu", clip=tiny_clip()) as r:
        r.adaptation = AdaptationConfig(steps=3)
        assert r.set_style("a neon oil painting").result(timeout=60) == "a neon oil painting"
        r.set_reference(face_like_frame(32))
        assert r.render(_features(r)).shape == (32, 32, 3)


def test_half_precision_and_channels_last_match_float32(checkpoint: Path) -> None:
    """The CUDA defaults (float16, channels-last), exercised on CPU."""
    frames = []
    for options in ({"half": False, "channels_last": False}, {"half": True, "channels_last": True}):
        with Renderer(preset="tiny", checkpoint=checkpoint, device="cpu", **options) as r:
            r.set_reference(face_like_frame(32))
            r.set_style("sketch").result(timeout=10)
            frames.append(r.render(_features(r)).astype(np.int16))
    assert np.abs(frames[0] - frames[1]).mean() < 2.0


def test_renderers_sharing_a_cache_adapt_a_prompt_once(checkpoint: Path) -> None:
    cache = StyleCache()
    with Renderer(
        preset="tiny", checkpoint=checkpoint, device="cpu", clip=tiny_clip(), style_cache=cache
    ) as first:
        first.adaptation = AdaptationConfig(steps=3)
        first.set_reference(face_like_frame(32))
        first.set_style("a neon oil painting").result(timeout=60)
    with Renderer(preset="tiny", checkpoint=checkpoint, device="cpu", style_cache=cache) as second:
        assert second.known_style("A neon oil painting") is cache.get("a neon oil painting")


def _stripes(count: int = 2) -> list[np.ndarray]:
    """Style pictures: orange stripes, unlike the face-like reference."""
    picture = np.zeros((48, 48, 3), np.uint8)
    picture[:, ::4] = (240, 120, 20)
    picture[:, 1::4] = (200, 60, 10)
    return [picture] * count


def test_style_pictures_adapt_without_clip_and_are_cached_by_name(
    checkpoint: Path, tmp_path: Path
) -> None:
    with Renderer(
        preset="tiny", checkpoint=checkpoint, device="cpu", style_cache_dir=tmp_path / "styles"
    ) as renderer:
        renderer.adaptation = AdaptationConfig(steps=5, probe_steps=1)
        renderer.set_reference(face_like_frame(32))
        features = _features(renderer)
        plain = renderer.render(features)
        assert renderer.set_style_images(_stripes(), "My  Stripes").result(60) == "my stripes"
        styled = renderer.render(features)
        delta = renderer.known_style("my stripes")
    assert not np.array_equal(plain, styled)
    assert delta is not None and len(delta.layers) == AdaptationConfig().top_k
    # Bounded: Adam moves a weight by at most about lr per step.
    assert max(float(t.abs().max()) for t in delta.deltas.values()) <= 5 * 1e-3 * 1.01
    with Renderer(
        preset="tiny", checkpoint=checkpoint, device="cpu", style_cache_dir=tmp_path / "styles"
    ) as again:
        again.set_reference(face_like_frame(32))
        assert again.set_style("my stripes").result(timeout=10) == "my stripes"
        assert np.array_equal(styled, again.render(features))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Pencil sketch", "selects the built-in style 'sketch'; choose another name"),
        ("zombie", "selects the built-in style 'zombie'"),
        ("  ", "must not be empty"),
        ("none", "must be 1 to 200 characters"),
    ],
)
def test_style_picture_names_of_builtin_styles_are_refused(
    renderer: Renderer, name: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        renderer.set_style_images(_stripes(), name)


def test_a_failed_picture_adaptation_reaches_the_caller_and_the_renderer_keeps_going(
    renderer: Renderer,
) -> None:
    future = renderer.set_style_images([np.zeros((4, 4), np.uint8)], "broken")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        future.result(timeout=30)
    assert renderer.render(_features(renderer)).shape == (32, 32, 3)
    assert renderer.set_style("sketch").result(timeout=10) == "sketch"


def test_a_cached_style_is_found_in_half_precision_and_after_a_builtin_style(
    checkpoint: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "styles"
    with Renderer("tiny", checkpoint, "cpu", style_cache_dir=cache) as first:
        first.adaptation = AdaptationConfig(steps=1, probe_steps=1)
        first.set_reference(face_like_frame(32))
        first.set_style_images(_stripes(), "stripes").result(timeout=60)
    with Renderer("tiny", checkpoint, "cpu", style_cache_dir=cache, half=True) as second:
        second.set_reference(face_like_frame(32))
        assert second.set_style("sketch").result(timeout=10) == "sketch"
        assert second.known_style("stripes") is not None


def test_with_clip_style_pictures_are_also_an_image_prompt(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models import style_manager as style_manager_module

    clips: list[object] = []
    real = style_manager_module.exemplar_style_loss

    def recording(*args: Any, **kwargs: Any) -> Any:
        clips.append(kwargs.get("clip"))
        return real(*args, **kwargs)

    monkeypatch.setattr(style_manager_module, "exemplar_style_loss", recording)
    guide = tiny_clip()
    adaptation = AdaptationConfig(top_k=1, steps=2, probe_steps=1)
    with Renderer("tiny", checkpoint, "cpu", clip=guide, adaptation=adaptation) as renderer:
        renderer.set_reference(face_like_frame(32))
        assert renderer.set_style_images(_stripes(), "stripes").result(60) == "stripes"
    with Renderer("tiny", checkpoint, "cpu", adaptation=adaptation) as renderer:
        renderer.set_reference(face_like_frame(32))
        assert renderer.set_style_images(_stripes(), "stripes").result(60) == "stripes"
    assert clips == [guide, None]


def test_renderers_on_one_wrapper_share_the_networks_and_hold_little_state(
    checkpoint: Path,
) -> None:
    wrapper = InferenceWrapper("tiny", checkpoint, "cpu")
    styles = StyleManager(wrapper)
    first, second = Renderer(wrapper=wrapper, styles=styles), Renderer(styles=styles)
    try:
        assert first.generator is second.generator is wrapper.generator
        assert first.extractor.kp_detector is second.extractor.kp_detector
        first.set_reference(face_like_frame(32))
        network_bytes = sum(p.numel() * 4 for p in wrapper.generator.parameters())
        # the reference, its keypoints and its features at every scale: 32x32 tiny model
        assert 0 < first.state_bytes() < network_bytes
        assert second.state_bytes() < 1024  # only the driving keypoint buffers so far
    finally:
        first.close()
        second.close()


def test_a_style_manager_of_other_networks_is_refused(checkpoint: Path) -> None:
    styles = StyleManager(InferenceWrapper("tiny", checkpoint, "cpu"))
    with pytest.raises(ValueError, match="built for other networks"):
        Renderer(wrapper=InferenceWrapper("tiny", checkpoint, "cpu"), styles=styles)


def _alone(checkpoint: Path, style: str, motions: list[np.ndarray], shift: int) -> list[np.ndarray]:
    with Renderer("tiny", checkpoint, "cpu") as renderer:
        renderer.set_reference(face_like_frame(32, shift))
        renderer.set_style(style).result(timeout=10)
        return [renderer.render(m) for m in motions]


def test_two_participants_in_different_styles_render_what_each_would_alone(
    checkpoint: Path,
) -> None:
    """Interleaved on one thread, then at once on two threads: exactly the frames each
    renderer gives on networks of its own. "cel" changes the encoder, "comic" the decoder."""
    wrapper = InferenceWrapper("tiny", checkpoint, "cpu")
    styles = StyleManager(wrapper)
    with Renderer(styles=styles) as probe:
        motions = [probe.extractor.extract(face_like_frame(32, s)) for s in range(-4, 5)]
    expected = {
        "cel": _alone(checkpoint, "cel", motions, 0),
        "comic": _alone(checkpoint, "comic", motions, 3),
    }
    assert not np.array_equal(expected["cel"][0], expected["comic"][0])
    renderers = {name: Renderer(styles=styles) for name in expected}
    try:
        for (name, renderer), shift in zip(renderers.items(), (0, 3), strict=True):
            renderer.set_reference(face_like_frame(32, shift))
            renderer.set_style(name).result(timeout=10)
        for i, motion in enumerate(motions):
            for name, renderer in renderers.items():
                assert np.array_equal(renderer.render(motion), expected[name][i]), (name, i)
        with ThreadPoolExecutor(2) as pool:
            results = {
                name: pool.submit(lambda r: [r.render(m) for m in motions * 3], renderer)
                for name, renderer in renderers.items()
            }
            for name, frames in results.items():
                assert all(
                    np.array_equal(f, expected[name][i % len(motions)])
                    for i, f in enumerate(frames.result(timeout=60))
                ), name
        # switching one participant's style leaves the other's frames alone
        renderers["comic"].set_style("sketch").result(timeout=10)
        assert np.array_equal(renderers["cel"].render(motions[2]), expected["cel"][2])
        assert not np.array_equal(renderers["comic"].render(motions[2]), expected["comic"][2])
    finally:
        for renderer in renderers.values():
            renderer.close()


def test_channels_last_renders_what_the_contiguous_layout_renders(checkpoint: Path) -> None:
    frames = []
    for channels_last in (False, True):
        with Renderer("tiny", checkpoint, "cpu", channels_last=channels_last) as renderer:
            renderer.set_reference(face_like_frame(32))
            renderer.set_style("comic").result(timeout=10)
            frames.append(renderer.render(_features(renderer, 2)).astype(np.int16))
    assert np.abs(frames[0] - frames[1]).max() <= 1  # float32 sums in another order


def test_a_style_that_does_not_fit_the_networks_fails_its_future(renderer: Renderer) -> None:
    wrong = StyleDelta("wrong", ("final",), {"final.weight": torch.zeros(2, 2)})
    renderer.styles.cache.put("wrong", wrong)
    with pytest.raises(ValueError, match="shape"):
        renderer.set_style("wrong").result(timeout=10)
    assert renderer.style_key == NO_STYLE


def test_a_renderer_keeps_the_encoded_reference_of_its_last_two_styles_only(
    renderer: Renderer,
) -> None:
    """Every style that changes the encoder used to keep its encoded reference for good."""
    weight = renderer.generator.first.conv.weight
    for name, scale in (("enc two", 0.1), ("enc three", 0.2)):
        change = scale * torch.ones(weight.shape)
        renderer.styles.cache.put(
            name, StyleDelta(name, ("first.conv",), {"first.conv.weight": change})
        )
    one_set = renderer.state_bytes()  # the unstyled encoding
    features = _features(renderer)
    renderer.set_style("cel").result(timeout=10)
    cel = renderer.render(features)
    two_sets = renderer.state_bytes()
    assert two_sets > one_set
    for style in ("enc two", "enc three", None, "cel", "enc two"):
        renderer.set_style(style).result(timeout=10)
        assert renderer.state_bytes() == two_sets, style  # never a third encoding
    renderer.set_style("cel").result(timeout=10)
    assert np.array_equal(renderer.render(features), cel)
