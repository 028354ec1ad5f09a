"""`cartooncodec call`: one participant of a call (`cartooncodec demo` is cartooncodec/demo.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from models.checkpoint_option import add_checkpoint_arguments
from models.style_images import MAX_SENT_STYLE_IMAGES
from pipeline.iceservers import add_ice_server_argument

DEFAULT_SERVER = "http://127.0.0.1:8080"


def parse_prompt_schedule(text: str) -> list[tuple[float, str]]:
    """``"0:sketch,8:comic"`` -> [(0.0, "sketch"), (8.0, "comic")] (seconds into the call)."""
    schedule = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        at, colon, prompt = item.partition(":")
        try:
            seconds = float(at)
        except ValueError:
            seconds = -1.0
        if not colon or seconds < 0 or not prompt.strip():
            raise argparse.ArgumentTypeError(
                f"bad schedule entry {item!r}: write SECONDS:PROMPT, e.g. '0:sketch,8:comic'"
            )
        schedule.append((seconds, prompt.strip()))
    return schedule


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_call(subparsers)


def _register_call(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "call",
        help="join a call as one participant",
        description="Join a room: send your face's motion and a style prompt, receive the "
        "other participant as a cartoon. Join with --room and --token, or --room-file and "
        "--seat; or only create a room with --create-room. Type a line on stdin to change "
        "your prompt mid-call.",
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help="signaling server URL")
    parser.add_argument("--room", help="room id (from POST /rooms)")
    parser.add_argument("--token", help="join token for your seat")
    parser.add_argument("--room-file", type=Path, help="JSON {room, tokens} from --create-room")
    parser.add_argument("--seat", type=int, choices=(0, 1), help="seat to take with --room-file")
    parser.add_argument(
        "--create-room",
        type=Path,
        metavar="FILE",
        help="create a room, write {room, tokens} to FILE and exit",
    )
    parser.add_argument(
        "--input",
        default="synthetic",
        help="'synthetic' (sends tone bursts), a webcam index (sends the microphone), an image "
        "file (animated, sends silence) or a video file (in real time, looped, with its sound)",
    )
    parser.add_argument("--prompt", default="", help="style of your cartoon, e.g. 'pencil sketch'")
    parser.add_argument(
        "--prompt-schedule",
        type=parse_prompt_schedule,
        default=[],
        metavar="T:PROMPT,...",
        help="prompt changes at seconds into the call, e.g. '0:sketch,8:comic'",
    )
    parser.add_argument(
        "--style-image",
        action="append",
        default=[],
        metavar="PATH",
        help="a style picture (file or folder; repeatable, at most "
        f"{MAX_SENT_STYLE_IMAGES} pictures) sent at the start: the server adapts your style "
        "to its look in the background (after --prompt). Mid-call, type @PATH on stdin",
    )
    add_model_args(parser, fps=25.0)
    parser.add_argument("--seconds", type=float, default=None, help="hang up after this long")
    parser.add_argument("--record", type=Path, help="write the other participant to this MP4")
    parser.add_argument(
        "--show",
        action="store_true",
        help="show the other participant and play their sound (the speaker needs "
        "pip install 'cartooncodec[sound]')",
    )
    parser.add_argument("--mute", action="store_true", help="send no sound")
    parser.add_argument(
        "--render-locally",
        action="store_true",
        help="render the other participant here from their relayed motion (a few kbps down) "
        "instead of receiving the server's rendering as video (~100+ kbps down); lite-128 "
        "renders at 25+ fps on 2 CPU cores",
    )
    parser.add_argument(
        "--bundle",
        type=int,
        default=1,
        choices=(1, 2, 3),
        help="frames per motion message (default 1); 2 halves the messages and their framing "
        "on the wire, at the cost of one frame interval of latency",
    )
    parser.add_argument(
        "--no-stdin", action="store_true", help="do not read prompt changes from stdin"
    )
    parser.add_argument(
        "--loopback-ice",
        action="store_true",
        help="offer only 127.0.0.1 ICE candidates (server on this machine, started with "
        "--loopback-ice)",
    )
    add_ice_server_argument(parser)
    parser.set_defaults(func=call)


def add_model_args(parser: argparse.ArgumentParser, fps: float) -> None:
    parser.add_argument("--preset", default="lite-128", help="model preset (must match server)")
    add_checkpoint_arguments(parser)
    parser.add_argument("--fps", type=float, default=fps, help=f"capture rate (default {fps:g})")


def call(args: argparse.Namespace) -> int:
    from client.callclient import CallError

    try:
        if args.create_room:
            return asyncio.run(_create_room_file(args.server, args.create_room))
        return asyncio.run(_call(args))
    except (CallError, ValueError, OSError) as exc:
        sys.stderr.write(f"cartooncodec call: {exc}\n")  # the one line said, not logged again
        return 1
    except KeyboardInterrupt:
        return 130


async def _create_room_file(server: str, path: Path) -> int:
    import httpx

    from client.callclient import CallError

    async with httpx.AsyncClient(timeout=10.0) as http:
        try:
            response = await http.post(f"{server.rstrip('/')}/rooms")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise CallError(f"cannot create a room at {server}: {exc}") from exc
    room = response.json()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"room": room["room"], "tokens": room["tokens"]}))
    sys.stdout.write(f"room {room['room']} written to {path}\n")
    return 0


def _room_and_token(args: argparse.Namespace) -> tuple[str, str]:
    if args.room and args.token:
        return args.room, args.token
    if args.room_file and args.seat is not None:
        try:
            room = json.loads(args.room_file.read_text())
            return room["room"], room["tokens"][args.seat]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"{args.room_file} is not a room file from --create-room") from exc
    raise ValueError("say which room: --room ID --token T, or --room-file FILE --seat 0|1")


async def _call(args: argparse.Namespace) -> int:
    from client.callclient import CallClient, CallConfig
    from models.style_images import read_sent_style_images
    from pipeline.ice import use_loopback_ice

    room, token = _room_and_token(args)
    style_images = (
        await asyncio.to_thread(read_sent_style_images, args.style_image)
        if args.style_image
        else []
    )
    if args.loopback_ice:
        use_loopback_ice()
    config = CallConfig(
        server=args.server,
        room=room,
        token=token,
        input=args.input,
        prompt=args.prompt,
        prompt_schedule=args.prompt_schedule,
        style_images=style_images,
        preset=args.preset,
        checkpoint=args.checkpoint,
        fps=args.fps,
        seconds=args.seconds,
        record=args.record,
        show=args.show,
        mute=args.mute,
        read_stdin=not args.no_stdin,
        ice_servers=tuple(args.ice_server),
        render_locally=args.render_locally,
        bundle=args.bundle,
    )
    client = await asyncio.to_thread(CallClient, config)
    result = await client.run()
    summary = result.summary()
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0
