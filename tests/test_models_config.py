import pytest

from models.config import PRESETS, ModelConfig, get_preset


def test_presets_describe_sixty_float_motion() -> None:
    for name in ("full-256", "lite-128", "tiny"):
        assert PRESETS[name].feature_size == 60
        assert PRESETS[name].name == name


def test_full_preset_has_published_first_order_model_sizes() -> None:
    config = get_preset("full-256")
    assert (config.image_size, config.num_kp, config.estimate_jacobian) == (256, 10, True)
    kp, motion, generator = config.keypoint, config.dense_motion, config.generator
    assert (kp.block_expansion, kp.max_features, kp.num_blocks, kp.scale_factor) == (
        32,
        1024,
        5,
        0.25,
    )
    assert (motion.block_expansion, motion.max_features, motion.num_blocks) == (64, 1024, 5)
    assert motion.scale_factor == 0.25
    assert (generator.block_expansion, generator.max_features) == (64, 512)
    assert (generator.num_down_blocks, generator.num_bottleneck_blocks) == (2, 6)
    assert generator.estimate_occlusion_map


def test_unknown_preset_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'.*full-256, lite-128, tiny"):
        get_preset("huge")


def test_overrides_replace_top_level_fields() -> None:
    assert get_preset("tiny", num_kp=5).feature_size == 30


def test_config_dict_round_trip_is_exact() -> None:
    config = get_preset("lite-128")
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_config_dict_with_unknown_field_is_refused() -> None:
    data = get_preset("tiny").to_dict()
    data["generator"]["colour"] = "blue"
    with pytest.raises(ValueError, match="invalid model config"):
        ModelConfig.from_dict(data)
