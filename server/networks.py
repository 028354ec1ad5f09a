"""The networks of a server: loaded once, on first use, and shared by every participant.

Each participant gets its own :class:`models.Renderer` (reference, keypoints, active style:
its state only) on one :class:`models.inference.InferenceWrapper` and one
:class:`models.style_manager.StyleManager` (built-in styles, the style cache, CLIP), so a
participant costs its state, not a copy of the networks (server/README.md, "Memory").
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from server.settings import ServerSettings

if TYPE_CHECKING:
    from models.renderer import Renderer
    from models.style_manager import StyleManager


class SharedNetworks:
    """``renderer()`` builds a participant's renderer; the first call loads the networks
    (thread-safe: callers at once wait for one load). A load that fails is tried again on the
    next call."""

    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._styles: StyleManager | None = None

    @property
    def loaded(self) -> bool:
        return self._styles is not None

    def renderer(self) -> Renderer:
        # models is imported here, on a render thread: importing torch takes seconds and the
        # signalling side (rooms, tokens, SDP checks) needs none of it
        from models.renderer import Renderer

        return Renderer(styles=self._load())

    def _load(self) -> StyleManager:
        from models.inference import InferenceWrapper
        from models.style_manager import StyleManager

        with self._lock:
            if self._styles is None:
                settings = self._settings
                wrapper = InferenceWrapper(settings.preset, settings.checkpoint, settings.device)
                self._styles = StyleManager(
                    wrapper,
                    clip_weights=settings.clip_weights,
                    style_cache_dir=settings.style_cache_dir,
                )
            return self._styles
