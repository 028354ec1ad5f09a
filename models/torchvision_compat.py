"""Import open_clip on a CPU-only torch.

open_clip imports torchvision. The registry's torchvision wheels are CUDA builds; with a
CPU-only torch their import fails with ``operator torchvision::nms does not exist`` because
the compiled ops library does not load. open_clip never calls nms/qnms, so registering
placeholder schemas for them lets the pure-Python parts of torchvision import. This runs only
when the real import fails, so a working (GPU) torchvision is left untouched.
"""

from __future__ import annotations

import importlib
import logging
import sys
from types import ModuleType

import torch

log = logging.getLogger(__name__)

_MISSING_OP_MESSAGE = "torchvision::nms does not exist"
_PLACEHOLDER_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_placeholder_library: torch.library.Library | None = None


def import_torchvision() -> ModuleType:
    """Return the torchvision module, registering placeholder ops first if it needs them."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if _MISSING_OP_MESSAGE not in str(error):
            raise
    log.info("torchvision ops library did not load (CPU-only torch); registering placeholders")
    _register_placeholder_ops()
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # drop the half-initialised modules of the failed import
    return importlib.import_module("torchvision")


def import_open_clip() -> ModuleType:
    """Return the open_clip module, importing torchvision through :func:`import_torchvision`."""
    import_torchvision()
    return importlib.import_module("open_clip")


def _register_placeholder_ops() -> None:
    global _placeholder_library
    if _placeholder_library is not None:
        return
    _placeholder_library = torch.library.Library("torchvision", "DEF")
    for schema in _PLACEHOLDER_SCHEMAS:
        _placeholder_library.define(schema)
