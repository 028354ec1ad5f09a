"""Shared fixtures and builders for the tests/test_models_*.py modules."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch


@pytest.fixture
def single_thread() -> Iterator[None]:
    """One torch thread: on a shared, loaded 2-core machine two OpenMP threads spin-wait on each
    other and tiny-model steps take 50x longer; seeded for reproducible weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def face_like_frame(size: int = 32, shift: int = 0) -> np.ndarray:
    """size x size x 3 uint8 RGB: a bright disc (moved right by ``shift`` px) on a gradient."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) * 2 - 1
    disc = ((x - 2 * shift / size) ** 2 + y**2 < 0.4).astype(np.float32)
    rgb = np.stack([0.2 + 0.6 * disc, 0.3 + 0.3 * (x + 1) / 2, 0.5 - 0.3 * disc], axis=-1)
    return (rgb * 255).round().astype(np.uint8)
