"""A stand-in for the ``sounddevice`` package (PortAudio), to put in ``sys.modules``: its
streams call nothing by themselves; a test drives their callbacks as PortAudio's thread would.

    fake = FakeSoundDevice()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    ...
    fake.streams[0].callback(block, 480, None, None)
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any


class PortAudioError(Exception):
    pass


class FakeStream:
    """What the client uses of ``sounddevice.InputStream`` / ``OutputStream``."""

    def __init__(self, module: FakeSoundDevice, **settings: Any) -> None:
        if module.no_device:
            raise PortAudioError("Error querying device -1")
        self.settings = settings
        self.callback: Callable[..., None] = settings["callback"]
        self.active = self.closed = False
        module.streams.append(self)

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def close(self) -> None:
        self.closed = True


class FakeSoundDevice(ModuleType):
    """``no_device``: opening a stream fails as where PortAudio finds no device."""

    PortAudioError = PortAudioError

    def __init__(self, no_device: bool = False) -> None:
        super().__init__("sounddevice")
        self.no_device = no_device
        self.streams: list[FakeStream] = []

    def InputStream(self, **settings: Any) -> FakeStream:  # noqa: N802 (sounddevice's name)
        return FakeStream(self, kind="input", **settings)

    def OutputStream(self, **settings: Any) -> FakeStream:  # noqa: N802 (sounddevice's name)
        return FakeStream(self, kind="output", **settings)
