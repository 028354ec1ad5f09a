"""Unified versus cascaded stylisation: the latency the one-pass design saves.

Unified: the receiver's generator with a style delta applied renders the styled frame in one
pass (`Renderer.render` with a built-in style active). Cascade: the same generator renders a
plain reconstruction (no style), then a separate stylisation pass turns it into the styled
frame. Two stylisers stand for that second pass:

* `classical:<style>`: the OpenCV stylisation of the same built-in style (`training.styles`),
  i.e. the look the style deltas were trained towards;
* `cnn`: a feed-forward image-to-image network the size of the preset's generator image
  pathway (encoder, residual bottleneck, decoder; a copy of it), the usual shape of a
  fast style-transfer network. Its weights do not matter for timing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from bench.timing import Timing, time_calls

if TYPE_CHECKING:
    from models import Renderer

Stylizer = Callable[[np.ndarray], np.ndarray]


def classical_stylizer(style: str) -> Stylizer:
    """The OpenCV stylisation of built-in ``style`` as a frame -> frame function."""
    from training.styles import stylize

    return lambda frame: stylize(frame, style)


def cnn_stylizer(renderer: Renderer) -> Stylizer:
    """A copy of the renderer's generator image pathway run on whole frames (no warping)."""
    import torch

    from models.frames import frame_to_tensor, tensor_to_frame
    from models.generator import identity_motion

    network = copy.deepcopy(renderer.generator).eval()
    size, device, dtype = renderer.size, renderer.device, renderer.dtype

    @torch.inference_mode()
    def stylize(frame: np.ndarray) -> np.ndarray:
        features = network.encode_source(frame_to_tensor(frame, size, device, dtype))
        height, width = features[-1].shape[2:]
        motion = identity_motion(1, height, width, features[0])
        return tensor_to_frame(network.decode(features, motion))

    return stylize


def unified(renderer: Renderer, features: Sequence[np.ndarray], style: str) -> Timing:
    """Per-frame time of rendering with ``style`` applied inside the generator."""
    renderer.set_style(style).result()
    return time_calls(renderer.render, features)


def cascade(renderer: Renderer, features: Sequence[np.ndarray], stylizer: Stylizer) -> Timing:
    """Per-frame time of a plain reconstruction followed by ``stylizer``."""
    renderer.set_style(None).result()
    return time_calls(lambda vector: stylizer(renderer.render(vector)), features)
