"""Face motion extraction and text-guided cartoon rendering.

``from models import Renderer, MotionExtractor, get_preset, PRESETS``. Exports are imported
lazily so that light modules (``models.style_names``) do not pull in torch.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# OpenMP threads that spin while waiting make torch's 2-thread CPU inference 30x slower as soon
# as another busy process shares the 2 cores (measured: lite-128 render 33 ms -> 930 ms).
# libgomp reads this once, when torch loads, so it only helps if models is imported first;
# entry points should set it before importing torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from models.config import PRESETS, ModelConfig, get_preset
    from models.extractor import MotionExtractor
    from models.renderer import Renderer

__all__ = ["PRESETS", "ModelConfig", "MotionExtractor", "Renderer", "get_preset"]

_EXPORTS = {
    "PRESETS": "models.config",
    "ModelConfig": "models.config",
    "get_preset": "models.config",
    "MotionExtractor": "models.extractor",
    "Renderer": "models.renderer",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
