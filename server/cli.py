"""`cartooncodec serve`: the signaling server and render worker."""

from __future__ import annotations

import argparse
import os

from models.checkpoint_option import add_checkpoint_arguments
from pipeline.iceservers import add_ice_server_argument
from server.settings import ServerSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the signaling server and render worker",
        description="Serve rooms over HTTP (FastAPI + uvicorn); each participant's motion is "
        "rendered in their prompted style and streamed to the other participant over WebRTC. "
        "Join tokens are signed with $CARTOONCODEC_TOKEN_SECRET (random per process if unset).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="TCP port")
    parser.add_argument("--preset", default="lite-128", help="model preset clients must use")
    add_checkpoint_arguments(parser)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument(
        "--clip-weights",
        default=None,
        help="open_clip weights for prompts that name no built-in style (default: built-in only)",
    )
    parser.add_argument(
        "--style-cache",
        default=os.environ.get("CARTOONCODEC_STYLE_CACHE"),
        help="folder keeping adapted styles (default $CARTOONCODEC_STYLE_CACHE)",
    )
    parser.add_argument(
        "--token-ttl", type=float, default=3600.0, help="seconds a join token stays valid"
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=ServerSettings.connect_timeout_s,
        help="seconds a joined client has to connect before its seat is freed",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CARTOONCODEC_API_KEY"),
        help="key POST /rooms needs in its X-API-Key header (default $CARTOONCODEC_API_KEY; "
        "unset: anyone may create rooms, within --max-rooms and --rooms-per-minute)",
    )
    parser.add_argument(
        "--max-rooms",
        type=int,
        default=ServerSettings.max_rooms,
        help="rooms held at once (unjoined ones expire)",
    )
    parser.add_argument(
        "--rooms-per-minute",
        type=int,
        default=ServerSettings.rooms_per_client_per_minute,
        help="rooms one client address may create",
    )
    parser.add_argument(
        "--loopback-ice",
        action="store_true",
        help="offer only 127.0.0.1 ICE candidates (clients on this machine)",
    )
    add_ice_server_argument(parser)
    parser.set_defaults(func=serve)


def _weights_from_env(preset: str) -> str | None:
    """$CARTOONCODEC_WEIGHTS/<preset>.pt when it exists (the server image mounts weights there)."""
    folder = os.environ.get("CARTOONCODEC_WEIGHTS")
    if folder and os.path.isfile(os.path.join(folder, f"{preset}.pt")):
        return os.path.join(folder, f"{preset}.pt")
    return None


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import check_models, create_app

    settings = ServerSettings(
        preset=args.preset,
        checkpoint=args.checkpoint or _weights_from_env(args.preset),
        device=args.device,
        clip_weights=args.clip_weights,
        style_cache_dir=args.style_cache,
        token_ttl_s=args.token_ttl,
        connect_timeout_s=args.connect_timeout,
        loopback_ice=args.loopback_ice,
        ice_servers=tuple(args.ice_server),
        max_rooms=args.max_rooms,
        rooms_per_client_per_minute=args.rooms_per_minute,
        api_key=args.api_key,
    )
    check_models(settings)  # a checkpoint that does not load stops the server here
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0
