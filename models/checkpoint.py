"""Checkpoints: the first-order motion model's file layout, plus our own entries.

A checkpoint is a torch file holding ``generator`` and ``kp_detector`` state dicts (as in the
released FOMM vox-256 checkpoint, which loads into the ``full-256`` preset) and, in files we
write, ``preset`` (name), ``config`` (:meth:`ModelConfig.to_dict`), ``styles``
({name: :meth:`StyleDelta.to_dict`}), ``meta`` (free-form: data, steps, ...) and, when one was
distilled (``cartooncodec train --structure-steps``), ``structure_detector``: the state dict of
a second keypoint detector that finds the codec's keypoints through a style
(:mod:`training.structure`). Files are read
with ``torch.load(weights_only=True)``, so a checkpoint cannot run code.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.checkpoint_option import RANDOM_WEIGHTS, RANDOM_WEIGHTS_ENV
from models.config import GENERATOR_ARCHITECTURE, ModelConfig, get_preset
from models.errors import short_reason
from models.generator import OcclusionAwareGenerator
from models.keypoint_detector import KPDetector
from models.style_delta import StyleDelta

__all__ = [
    "CheckpointError",
    "LoadedModels",
    "build_models",
    "default_checkpoint_path",
    "load_checkpoint",
    "load_models",
    "load_state",
    "read_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Old FOMM files predate this BatchNorm buffer; torch fills it in, so its absence is harmless.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)
_DATA_PARALLEL_PREFIX = "module."


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model; names the file."""


@dataclass
class LoadedModels:
    """Networks built from a preset and filled from a checkpoint (or randomly initialised)."""

    config: ModelConfig
    kp_detector: KPDetector
    generator: OcclusionAwareGenerator
    styles: dict[str, StyleDelta] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    structure_detector: KPDetector | None = None

    @property
    def structure(self) -> KPDetector:
        """The detector that measures a style's structure: the structure detector, or the codec's
        own detector when the checkpoint has none."""
        return self.kp_detector if self.structure_detector is None else self.structure_detector


def default_checkpoint_path(preset: str) -> Path:
    """Where the shipped checkpoint of ``preset`` lives (it may not exist)."""
    return WEIGHTS_DIR / f"{preset}.pt"


def load_models(
    preset: str = "lite-128",
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModels:
    """Networks of ``preset`` from ``checkpoint``, else from the shipped default for the preset.

    ``checkpoint`` RANDOM_WEIGHTS (``--random-weights``) gives randomly initialised networks, as
    does a preset without a shipped checkpoint when $CARTOONCODEC_RANDOM_WEIGHTS is set (see
    models.checkpoint_option); otherwise a missing checkpoint raises CheckpointError.
    """
    default = default_checkpoint_path(preset)
    if checkpoint is None and default.exists():
        checkpoint = default
    if checkpoint is None and not os.environ.get(RANDOM_WEIGHTS_ENV):
        raise CheckpointError(
            f"no checkpoint for preset {preset!r}: {default} does not exist; pass --checkpoint "
            "FILE (one `cartooncodec train` wrote), or --random-weights for untrained networks "
            "(they render noise: for tests and speed measurements only)"
        )
    if checkpoint is not None and str(checkpoint) != RANDOM_WEIGHTS:
        return load_checkpoint(checkpoint, preset, device)
    log.warning("preset %r with random weights: its output is noise", preset)
    models = build_models(get_preset(preset))
    models.kp_detector.to(device)
    models.generator.to(device)
    return models


def build_models(config: ModelConfig) -> LoadedModels:
    """Randomly initialised networks for ``config``, in eval mode."""
    return LoadedModels(config, KPDetector(config).eval(), OcclusionAwareGenerator(config).eval())


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dict; CheckpointError naming the file if it is unreadable."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint {path} does not exist") from error
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise CheckpointError(
            f"checkpoint {path} is not a readable torch file: {short_reason(error)}"
        ) from error
    if not isinstance(data, dict) or not {"generator", "kp_detector"} <= set(data):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"checkpoint {path} has no 'generator' and 'kp_detector' state dicts (found {found})"
        )
    return data


def load_checkpoint(
    path: str | os.PathLike[str],
    preset: str | ModelConfig | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModels:
    """Build the networks and fill them from ``path``.

    The preset comes from the file when it names one (``preset``/``config``); a ``preset``
    argument that disagrees with the file is an error. Files without one (published FOMM
    checkpoints) are loaded into ``preset``, ``full-256`` by default.
    """
    path = Path(path)
    data = read_checkpoint(path)
    config = _config_of(data, path, preset)
    models = build_models(config)
    load_state(models.kp_detector, data["kp_detector"], path, "kp_detector")
    load_state(models.generator, data["generator"], path, "generator")
    models.styles = _styles_of(data.get("styles") or {}, models.generator, path)
    models.meta = dict(data.get("meta") or {})
    models.path = path
    if data.get("structure_detector") is not None:
        models.structure_detector = KPDetector(config).eval()
        load_state(
            models.structure_detector, data["structure_detector"], path, "structure_detector"
        )
        models.structure_detector.requires_grad_(False).to(device)
    models.kp_detector.to(device)
    models.generator.to(device)
    return models


def load_state(module: nn.Module, state: Any, path: Path, part: str) -> None:
    """Strictly load ``state`` into ``module``; CheckpointError naming the first bad key."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {path}: {part!r} is not a state dict")
    state = {_strip_prefix(key): value for key, value in state.items()}
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise CheckpointError(
            f"checkpoint {path}: {part} is missing key {missing[0]!r} "
            f"({len(missing)} missing in all); is it for another preset?"
        )
    if unexpected:
        raise CheckpointError(
            f"checkpoint {path}: {part} has unexpected key {unexpected[0]!r} "
            f"({len(unexpected)} unexpected in all); is it for another preset?"
        )
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != expected[key].shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(
                f"checkpoint {path}: {part} key {key!r} has shape {shape}, "
                f"the model expects {tuple(expected[key].shape)} (another preset, or another "
                "generator version: cartooncodec train --init-from FILE reuses what fits)"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"checkpoint {path}: {part} key {key!r} contains NaN or inf")
    module.load_state_dict(state, strict=False)


def save_checkpoint(
    path: str | os.PathLike[str],
    models: LoadedModels,
    styles: Mapping[str, StyleDelta] | None = None,
    meta: Mapping[str, Any] | None = None,
    half: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``models`` (and styles, meta) to ``path``; ``half`` stores floats as float16.

    ``styles`` defaults to ``models.styles``; ``extra`` adds entries such as optimizer states
    for resuming (they must be plain tensors, numbers, strings, lists and dicts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    styles = models.styles if styles is None else styles
    data: dict[str, Any] = dict(extra or {})
    data.update(
        {
            "generator": _cpu_state(models.generator.state_dict(), half),
            "kp_detector": _cpu_state(models.kp_detector.state_dict(), half),
            "preset": models.config.name,
            "config": models.config.to_dict(),
            "styles": {
                name: {**delta.to_dict(), "deltas": _cpu_state(delta.deltas, half)}
                for name, delta in styles.items()
            },
            "meta": dict(meta if meta is not None else models.meta),
        }
    )
    if models.structure_detector is not None:
        data["structure_detector"] = _cpu_state(models.structure_detector.state_dict(), half)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(data, temporary)
    os.replace(temporary, path)
    return path


def _cpu_state(state: Mapping[str, torch.Tensor], half: bool) -> dict[str, torch.Tensor]:
    return {
        key: (value.half() if half and value.is_floating_point() else value).detach().cpu().clone()
        for key, value in state.items()
    }


def _strip_prefix(key: str) -> str:
    return key[len(_DATA_PARALLEL_PREFIX) :] if key.startswith(_DATA_PARALLEL_PREFIX) else key


def _config_of(data: dict[str, Any], path: Path, preset: str | ModelConfig | None) -> ModelConfig:
    wanted = get_preset(preset) if isinstance(preset, str) else preset
    if "config" in data:
        try:
            stored = ModelConfig.from_dict(data["config"])
        except ValueError as error:
            raise CheckpointError(f"checkpoint {path}: {error}") from error
    elif "preset" in data:
        stored = get_preset(str(data["preset"]))
    else:
        return wanted or get_preset("full-256")
    if stored.generator.architecture != GENERATOR_ARCHITECTURE:
        raise CheckpointError(
            f"checkpoint {path} holds a {stored.generator.architecture!r} generator; this "
            f"version builds {GENERATOR_ARCHITECTURE!r}. Use the shipped checkpoint (no "
            "--checkpoint) or retrain: cartooncodec train --init-from OLD.pt reuses its "
            "matching weights"
        )
    if wanted is not None and wanted.name != stored.name:
        raise CheckpointError(
            f"checkpoint {path} is for preset {stored.name!r}, not {wanted.name!r}"
        )
    if wanted is not None and wanted != stored:
        changed = ", ".join(
            f"{name} {theirs} (this version: {ours})"
            for name, theirs, ours in _differences(stored.to_dict(), wanted.to_dict())
        )
        raise CheckpointError(
            f"checkpoint {path} holds an older {stored.name} with other sizes: {changed}; use "
            f"the shipped checkpoint or start a run from it: cartooncodec train --init-from {path}"
        )
    return stored


def _differences(
    theirs: dict[str, Any], ours: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """(dotted field, their value, our value) for every field of two config dicts that differs."""
    found = []
    for key in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(key), ours.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append((f"{prefix}{key}", a, b))
    return found


def _styles_of(styles: Any, generator: nn.Module, path: Path) -> dict[str, StyleDelta]:
    if not isinstance(styles, Mapping):
        raise CheckpointError(f"checkpoint {path}: 'styles' is not a dict")
    loaded = {}
    for name, data in styles.items():
        source = f"checkpoint {path}: style {name!r}"
        try:
            delta = StyleDelta.from_dict(data, source)
            delta.check_fits(generator, source)
        except ValueError as error:
            raise CheckpointError(str(error)) from error
        loaded[str(name)] = delta
    return loaded
