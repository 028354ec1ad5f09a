import numpy as np
import pytest

from codec import feature_map_schema, motion_schema
from codec.quantizer import MAX_LEVEL, Quantizer, level_scale, max_level


def test_quantize_dequantize_is_exact_on_the_grid_and_half_step_off_it():
    quantizer = Quantizer(motion_schema())
    rng = np.random.default_rng(0)
    features = rng.uniform(-0.9, 0.9, 60)
    indices = quantizer.quantize(features)
    decoded = quantizer.dequantize(indices)
    assert np.all(np.abs(decoded - features) <= quantizer.steps / 2 + 1e-6)
    assert np.array_equal(quantizer.quantize(decoded), indices)


def test_values_are_clipped_to_the_schema_range():
    quantizer = Quantizer(motion_schema())
    features = np.full(60, 100.0)
    decoded = quantizer.dequantize(quantizer.quantize(features))
    assert decoded[:20].max() == pytest.approx(1.0)
    assert decoded[20:].max() == pytest.approx(4.0)


def test_level_scales_the_step_by_octaves():
    assert level_scale(4) == 2.0
    assert Quantizer(motion_schema(), 8).steps[0] == 4 * Quantizer(motion_schema()).steps[0]
    with pytest.raises(ValueError, match="outside"):
        level_scale(MAX_LEVEL + 1)


def test_levels_that_collapse_a_group_to_one_value_are_refused():
    # Jacobians: step 1/16 on [-4, 4]; from level 25 the step exceeds 4 and only index 0 remains
    assert max_level(motion_schema()) == 24
    assert Quantizer(motion_schema(), 24).high[20:].max() == 1
    with pytest.raises(ValueError, match="rate level 25 leaves group 'jacobians' a single value"):
        Quantizer(motion_schema(), 25)
    assert max_level(feature_map_schema(2, bound=1000.0)) == MAX_LEVEL
