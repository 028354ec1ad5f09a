"""Server configuration in one dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.iceservers import ice_configuration


@dataclass
class ServerSettings:
    preset: str = "lite-128"
    checkpoint: str | None = None  # None: the preset's shipped weights, else random init
    device: str | None = None  # None: CUDA when present, else CPU
    clip_weights: str | None = None  # open_clip weights: lets prompts beyond built-in styles
    style_cache_dir: str | None = None  # adapted styles kept across runs
    token_secret: bytes | None = None  # None: $CARTOONCODEC_TOKEN_SECRET or random per process
    token_ttl_s: float = 3600.0
    loopback_ice: bool = False  # offer only 127.0.0.1 ICE candidates (demo and tests)
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs, see pipeline.iceservers (one of each)
    max_keyframe_side: int = 1024
    keyframe_decode_threads: int = 2  # key frames decoding at once, server-wide
    keyframe_queue: int = 8  # key frames waiting for a decode thread; more are refused
    # a participant not connected this long after its answer leaves (the client gives up at 20)
    connect_timeout_s: float = 30.0
    max_connecting: int = 64  # joins not yet connected, server-wide; more answer 503 at once
    room_sweep_s: float = 5.0  # expired, empty rooms are removed at least this often
    max_rooms: int = 1000  # rooms held at once, joined or not; POST /rooms answers 503 beyond
    rooms_per_client_per_minute: int = 30  # POST /rooms per client address; 429 beyond
    api_key: str | None = None  # None: POST /rooms is open, else it needs "X-API-Key: <key>"

    def __post_init__(self) -> None:
        ice_configuration(self.ice_servers)  # a bad --ice-server stops the server here
