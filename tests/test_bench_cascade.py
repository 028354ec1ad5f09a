"""The cascade's stylisers: frame in, styled frame of the same size out."""

from __future__ import annotations

import numpy as np
import pytest

from bench.cascade import classical_stylizer, cnn_stylizer
from models import Renderer
from tests.bench_clip import moving_shapes


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    with Renderer("tiny") as tiny:
        yield tiny


def test_cnn_styliser_maps_a_frame_to_a_frame_of_the_preset_size(renderer: Renderer) -> None:
    frame = moving_shapes(frames=1, size=64)[0]  # resized to the preset's 32 px
    stylize = cnn_stylizer(renderer)
    styled = stylize(frame)
    assert styled.shape == (32, 32, 3) and styled.dtype == np.uint8
    assert np.array_equal(stylize(frame), styled)  # inference only: no state carried over
    assert not np.array_equal(stylize(frame[::-1]), styled)


def test_classical_styliser_is_the_built_in_style() -> None:
    from training.styles import stylize

    frame = moving_shapes(frames=1, size=64)[0]
    assert np.array_equal(classical_stylizer("sketch")(frame), stylize(frame, "sketch"))
