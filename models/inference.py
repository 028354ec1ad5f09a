"""The networks a server loads once and every participant renders with (LivePortrait's wrapper).

:class:`InferenceWrapper` owns the loaded networks, their device, dtype, memory format and
(optionally) the compiled decoder, and nothing that belongs to one participant: the reference,
its keypoints and the active style live in :class:`models.renderer.Renderer`. Its networks
are never changed after loading, so any number of threads may render with them at once.

A style is served as a *styled view* of the generator (:meth:`InferenceWrapper.styled`): a
copy of the module tree that shares every parameter tensor with the base generator except the
few layers the style's delta touches, which hold base + delta. Views are built once per style
and kept (least recently used first out), so two participants with different styles render at
the same time without either one changing weights the other reads. (``torch.func.
functional_call`` would give the same numbers, but it swaps parameters on the shared module for
the duration of a call, which is not safe with two threads rendering at once.)
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from models.checkpoint import LoadedModels
from models.config import ModelConfig
from models.extractor import MotionExtractor
from models.generator import OcclusionAwareGenerator
from models.style_delta import StyleDelta, weights_fingerprint

__all__ = ["MAX_STYLED_VIEWS", "InferenceWrapper"]

MAX_STYLED_VIEWS = 32  # styled generator views kept; an evicted one is rebuilt on next use

Decode = Callable[[list[torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]


class InferenceWrapper:
    """Loaded networks on one device, shared by every renderer built on them.

    ``checkpoint`` None uses the shipped checkpoint of ``preset`` (see
    :func:`models.checkpoint.load_models`); ``models`` passes networks already loaded.
    ``half`` defaults to on for CUDA; ``channels_last`` defaults to on (CUDA and CPU:
    lite-128's decoder 52 -> 41 ms a frame on two CPU cores); ``compile`` compiles the decoder
    of each styled view.
    """

    def __init__(
        self,
        preset: str = "lite-128",
        checkpoint: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        *,
        models: LoadedModels | None = None,
        half: bool | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
        max_styled_views: int = MAX_STYLED_VIEWS,
    ) -> None:
        self.extractor = MotionExtractor(preset, checkpoint, device, models)
        self.device = self.extractor.device
        self.models = self.extractor.models
        self.config: ModelConfig = self.models.config
        self.generator: OcclusionAwareGenerator = self.models.generator.eval()
        self.kp_detector = self.extractor.kp_detector
        self.builtin_styles: dict[str, StyleDelta] = dict(self.models.styles)
        # The style cache's key of these weights, taken in float32 before any cast, so that a
        # style cached by a CPU float32 process (`cartooncodec style add`) fits a float16 server.
        self.fingerprint = weights_fingerprint(self.generator)
        on_cuda = self.device.type == "cuda"
        self.dtype = torch.float16 if (on_cuda if half is None else half) else torch.float32
        self.channels_last = True if channels_last is None else channels_last
        self.compile = compile
        for network in (self.kp_detector, self.generator):
            network.to(self.device, self.dtype)
            if self.channels_last:
                network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._max_views = max_styled_views
        self._views: OrderedDict[StyleDelta, tuple[OcclusionAwareGenerator, Decode]] = OrderedDict()
        self._views_lock = threading.Lock()
        self._base = (self.generator, self._decoder_of(self.generator))

    @property
    def size(self) -> int:
        """Side of the square frames rendered."""
        return self.config.image_size

    def styled(self, delta: StyleDelta | None) -> tuple[OcclusionAwareGenerator, Decode]:
        """(generator, its decode) rendering in ``delta``'s style (None: the base generator).

        ValueError if ``delta`` names a parameter the generator lacks or has the wrong shape.
        """
        if delta is None:
            return self._base
        with self._views_lock:
            view = self._views.get(delta)
            if view is not None:
                self._views.move_to_end(delta)
                return view
        delta.check_fits(self.generator)
        generator = self._styled_copy(delta)
        view = (generator, self._decoder_of(generator))
        with self._views_lock:
            view = self._views.setdefault(delta, view)  # a racing thread's view wins
            self._views.move_to_end(delta)
            while len(self._views) > self._max_views:
                self._views.popitem(last=False)
        return view

    def styled_views(self) -> int:
        """How many styled views are kept now."""
        with self._views_lock:
            return len(self._views)

    def float_copies(self) -> tuple[OcclusionAwareGenerator, nn.Module, nn.Module]:
        """Float32 copies, for adaptation, of the unstyled generator, the keypoint detector and
        the detector that measures structure (see :attr:`LoadedModels.structure`)."""
        return (
            copy.deepcopy(self.generator).float(),
            copy.deepcopy(self.kp_detector).float(),
            copy.deepcopy(self.models.structure).to(self.device, torch.float32),
        )

    def _styled_copy(self, delta: StyleDelta) -> OcclusionAwareGenerator:
        """The generator's module tree sharing every tensor, but base + delta where it touches."""
        shared = itertools.chain(self.generator.parameters(), self.generator.buffers())
        memo: dict[int, object] = {id(tensor): tensor for tensor in shared}
        view = copy.deepcopy(self.generator, memo)
        with torch.no_grad():
            for name, change in delta.deltas.items():
                owner, _, attribute = name.rpartition(".")
                module = view.get_submodule(owner)
                styled = getattr(module, attribute).detach().clone()  # keeps the memory format
                styled.add_(change.to(styled))
                setattr(module, attribute, nn.Parameter(styled, requires_grad=False))
        return view

    def _decoder_of(self, generator: OcclusionAwareGenerator) -> Decode:
        if self.compile:
            # The decoder only: compiling the dense motion network too was slower on CPU
            # (30 ms vs 22 ms a lite-128 frame; eager 30 ms), its grid sampling compiles poorly.
            return torch.compile(generator.decode, dynamic=False)
        return generator.decode
