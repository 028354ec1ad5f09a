"""What a call client is asked to do: ``CallConfig``, filled by ``cartooncodec call`` or a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.protocol import MAX_BUNDLE_ITEMS


@dataclass
class CallConfig:
    server: str
    room: str
    token: str
    input: str = "synthetic"
    prompt: str = ""
    prompt_schedule: list[tuple[float, str]] = field(default_factory=list)
    # re-encoded style pictures (models.style_images.read_sent_style_images), sent at the start
    style_images: list[bytes] = field(default_factory=list)
    preset: str = "lite-128"
    checkpoint: str | None = None
    fps: float = 25.0
    seconds: float | None = None  # None: until the other side leaves or Ctrl-C
    record: Path | None = None
    show: bool = False
    read_stdin: bool = False
    name: str = "client"
    motion_amplitude: float = 1.0
    seed: int = 0
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs, see pipeline.iceservers
    # render the other's face here from their relayed motion (client.localviewer), instead of
    # receiving the server's rendering as video
    render_locally: bool = False
    # frames a motion message carries: 2 halves the messages (and their SCTP/DTLS framing and
    # acknowledgements) at the cost of one frame interval of latency
    bundle: int = 1
    mute: bool = False  # send no audio track

    def __post_init__(self) -> None:
        if not 1 <= self.bundle < MAX_BUNDLE_ITEMS:
            raise ValueError(f"bundle takes 1 to {MAX_BUNDLE_ITEMS - 1} frames, got {self.bundle}")
