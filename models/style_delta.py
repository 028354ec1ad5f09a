"""Style deltas: the additive change one prompt makes to a few generator layers, and their cache.

A delta is small (only the selected layers), so switching the live generator between styles
is a handful of in-place tensor copies. :class:`StyleSwitch` keeps the generator's base values
and restores them exactly (copy, not subtraction, so no floating-point drift accumulates over
many switches). :class:`StyleCache` keeps deltas in memory and, optionally, on disk as
safetensors files keyed by the normalised prompt and the base weights they were adapted from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from models.style_names import normalize_prompt

__all__ = ["StyleCache", "StyleDelta", "StyleSwitch", "load_style_delta", "weights_fingerprint"]

log = logging.getLogger(__name__)

_FILE_FORMAT = "cartooncodec-style-delta"
_FILE_VERSION = "1"


@dataclass(eq=False)
class StyleDelta:
    """Additive parameter changes for the layers a prompt selected.

    ``deltas`` maps generator parameter names (``up_blocks.0.conv.weight``) to tensors of the
    parameter's shape; ``layers`` names the modules they belong to.
    """

    prompt: str
    layers: tuple[str, ...]
    deltas: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.deltas.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for a checkpoint's ``styles`` entry (torch.load(weights_only=True) safe)."""
        return {"prompt": self.prompt, "layers": list(self.layers), "deltas": dict(self.deltas)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "style delta") -> StyleDelta:
        """Inverse of :meth:`to_dict`; ValueError naming ``source`` on anything malformed."""
        if not isinstance(data, Mapping) or not {"prompt", "layers", "deltas"} <= set(data):
            raise ValueError(f"{source}: expected a dict with prompt, layers and deltas")
        prompt, layers, deltas = data["prompt"], data["layers"], data["deltas"]
        if not isinstance(prompt, str) or not all(isinstance(name, str) for name in layers):
            raise ValueError(f"{source}: prompt and layer names must be strings")
        if not isinstance(deltas, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in deltas.items()
        ):
            raise ValueError(f"{source}: deltas must map parameter names to tensors")
        delta = cls(prompt, tuple(layers), dict(deltas))
        delta.check_finite(source)
        return delta

    def check_finite(self, source: str = "style delta") -> None:
        for name, tensor in self.deltas.items():
            if not torch.isfinite(tensor).all():
                raise ValueError(f"{source}: delta for {name} contains NaN or inf")

    def check_fits(self, module: nn.Module, source: str = "style delta") -> None:
        """ValueError unless every delta names a parameter of ``module`` with its shape."""
        params = dict(module.named_parameters())
        for name, tensor in self.deltas.items():
            if name not in params:
                raise ValueError(f"{source}: the generator has no parameter {name!r}")
            if tensor.shape != params[name].shape:
                raise ValueError(
                    f"{source}: delta for {name} has shape {tuple(tensor.shape)}, "
                    f"the parameter {tuple(params[name].shape)}"
                )

    @contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """Apply to ``module`` inside the block; parameters are restored exactly afterwards."""
        self.check_fits(module)
        params = dict(module.named_parameters())
        originals = {name: params[name].detach().clone() for name in self.deltas}
        try:
            with torch.no_grad():
                for name, tensor in self.deltas.items():
                    params[name].add_(tensor.to(params[name]))
            yield
        finally:
            with torch.no_grad():
                for name, original in originals.items():
                    params[name].copy_(original)


class StyleSwitch:
    """Switches a live generator between style deltas without drift.

    Remembers the base value of each parameter the first time a delta touches it, and
    restores the previous delta's parameters from those copies before applying the next.
    Build it on the unstyled generator; it assumes nothing else changes those parameters.
    """

    def __init__(self, module: nn.Module) -> None:
        self._module = module
        self._params = dict(module.named_parameters())
        self._base: dict[str, torch.Tensor] = {}
        self.active: StyleDelta | None = None

    @torch.no_grad()
    def apply(self, delta: StyleDelta | None) -> None:
        """Make ``delta`` the active style (None: the base generator)."""
        if delta is self.active:
            return
        if delta is not None:
            delta.check_fits(self._module)
        if self.active is not None:
            for name in self.active.deltas:
                self._params[name].copy_(self._base[name])
        self.active = None
        if delta is not None:
            for name, tensor in delta.deltas.items():
                param = self._params[name]
                if name not in self._base:
                    self._base[name] = param.detach().clone()
                if tensor.dtype != param.dtype or tensor.device != param.device:
                    # Converted once, in place: later switches to this delta are pure adds.
                    tensor = delta.deltas[name] = tensor.to(param)
                param.add_(tensor)
        self.active = delta


def weights_fingerprint(module: nn.Module) -> str:
    """Short hash of ``module``'s parameters: deltas only fit the weights they were adapted on."""
    digest = hashlib.sha256()
    for name, param in sorted(module.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class StyleCache:
    """Style deltas by prompt, in memory and (with ``directory``) on disk.

    ``namespace`` (e.g. :func:`weights_fingerprint` of the base generator) separates deltas of
    different base weights. A damaged or foreign file on disk is skipped with a warning.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, namespace: str = ""
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.namespace = namespace
        self._memory: dict[str, StyleDelta] = {}

    def get(self, prompt: str) -> StyleDelta | None:
        key = normalize_prompt(prompt)
        if key in self._memory:
            return self._memory[key]
        path = self.path_for(prompt)
        if path is None or not path.exists():
            return None
        try:
            delta = load_style_delta(path, expected_prompt=key, expected_namespace=self.namespace)
        except ValueError as error:
            log.warning("ignoring cached style: %s", error)
            return None
        self._memory[key] = delta
        return delta

    def put(self, prompt: str, delta: StyleDelta) -> None:
        key = normalize_prompt(prompt)
        self._memory[key] = delta
        path = self.path_for(prompt)
        if path is not None:
            save_style_delta(path, delta, prompt=key, namespace=self.namespace)

    def __contains__(self, prompt: str) -> bool:
        return self.get(prompt) is not None

    def path_for(self, prompt: str) -> Path | None:
        if self.directory is None:
            return None
        name = hashlib.sha256(f"{self.namespace}\n{normalize_prompt(prompt)}".encode()).hexdigest()
        return self.directory / f"{name[:32]}.safetensors"


def save_style_delta(path: Path, delta: StyleDelta, prompt: str, namespace: str) -> None:
    """Write atomically (temporary file + rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "prompt": prompt,
        "namespace": namespace,
        "layers": json.dumps(list(delta.layers)),
    }
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in delta.deltas.items()}
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def load_style_delta(
    path: str | os.PathLike[str],
    expected_prompt: str | None = None,
    expected_namespace: str | None = None,
) -> StyleDelta:
    """Read a delta written by :class:`StyleCache`; ValueError naming the file when unusable."""
    try:
        with safe_open(str(path), framework="pt") as reader:
            metadata = reader.metadata() or {}
            tensors = {name: reader.get_tensor(name) for name in reader.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as error:
        raise ValueError(f"{path}: not a readable style delta file ({error})") from error
    if metadata.get("format") != _FILE_FORMAT or metadata.get("version") != _FILE_VERSION:
        raise ValueError(f"{path}: not a {_FILE_FORMAT} v{_FILE_VERSION} file")
    if expected_prompt is not None and metadata.get("prompt") != expected_prompt:
        raise ValueError(
            f"{path}: holds prompt {metadata.get('prompt')!r}, not {expected_prompt!r}"
        )
    if expected_namespace is not None and metadata.get("namespace") != expected_namespace:
        raise ValueError(f"{path}: adapted for other base weights")
    try:
        layers = json.loads(metadata.get("layers", ""))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: damaged layer list ({error})") from error
    return StyleDelta.from_dict(
        {"prompt": metadata.get("prompt", ""), "layers": layers, "deltas": tensors}, str(path)
    )
