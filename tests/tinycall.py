"""Shared set-up for the call tests: a tiny checkpoint whose built-in styles visibly differ,
SDP offers of a real aiortc peer, and the configurations peer connections are built with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import torch
from aiortc import RTCConfiguration, RTCPeerConnection

from client.config import CallConfig
from models.checkpoint import build_models, save_checkpoint
from models.config import get_preset
from models.style_delta import StyleDelta
from server.app import running_server
from server.settings import ServerSettings

STYLE_SHIFTS = {"sketch": 0.0, "comic": 3.0}  # added to the generator's output bias


def write_styled_checkpoint(path: Path) -> Path:
    """Random tiny networks plus styles ``sketch`` and ``comic``: comic brightens every pixel,
    so a prompt swap is visible in the received video."""
    torch.manual_seed(0)
    models = build_models(get_preset("tiny"))
    bias = models.generator.final.bias
    styles = {
        name: StyleDelta(name, ("final",), {"final.bias": torch.full_like(bias, shift)})
        for name, shift in STYLE_SHIFTS.items()
    }
    return save_checkpoint(path, models, styles=styles)


@asynccontextmanager
async def tiny_server(tmp_path: Path) -> AsyncIterator[tuple[str, httpx.AsyncClient, str]]:
    """A call server of the tiny preset on loopback ICE, with ``write_styled_checkpoint``'s
    styles: (its URL, an HTTP client of it, the checkpoint's path for the participants)."""
    checkpoint = str(write_styled_checkpoint(tmp_path / "tiny.pt"))
    settings = ServerSettings(preset="tiny", checkpoint=checkpoint, loopback_ice=True)
    async with running_server(settings) as url, httpx.AsyncClient(base_url=url) as http:
        yield url, http, checkpoint


async def make_offer(data_channel: bool = True, video: bool = True) -> str:
    """The SDP offer a call client sends (a ``control`` channel and a receive-only video; no
    video from a client that renders locally)."""
    pc = RTCPeerConnection()
    if data_channel:
        pc.createDataChannel("control")
    if video:
        pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def seat_config(
    url: str, room: dict[str, Any], seat: int, checkpoint: str, **changes: Any
) -> CallConfig:
    """A tiny-preset call config for ``seat`` of ``room`` (the answer of POST /rooms) at
    ``url``, named after the seat, with ``changes``."""
    return CallConfig(
        server=url,
        room=room["room"],
        token=room["tokens"][seat],
        preset="tiny",
        checkpoint=checkpoint,
        name=f"seat{seat}",
        **changes,
    )


def recorded_configurations(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType
) -> list[RTCConfiguration]:
    """The configurations ``module`` builds its RTCPeerConnections with, from now on."""
    configurations: list[RTCConfiguration] = []

    def recording(configuration: RTCConfiguration) -> RTCPeerConnection:
        configurations.append(configuration)
        return RTCPeerConnection(configuration)

    monkeypatch.setattr(module, "RTCPeerConnection", recording)
    return configurations


class OpenChannel:
    """A data channel that is open and keeps what is sent on it."""

    readyState = "open"

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []

    def send(self, data: str | bytes) -> None:
        self.sent.append(data)
