"""`cartooncodec bench memory`: the server's memory with 1, 2, ... N participants in calls.

A real server (`cartooncodec serve`, its own process, on 127.0.0.1) and N call clients in this
process (synthetic faces, --fps frames a second), joined one at a time, two to a room, each
with its own built-in style (cycling through the checkpoint's styles). After each join, once
the server holds that participant's renderer and reference, the server's RSS is read from
/proc. The
networks are loaded once per server (server/networks.py), so each participant should add only
its own state (reference features, peer connection, decoder), not a copy of the networks.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.attack import NO_KEEPALIVE, served, server_rss_mb
from bench.report import Table, add_bench_parser, add_model_arguments, publish

SETTLE_S = 3.0  # after a participant's renderer and reference are up, before RSS is read


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_bench_parser(
        subparsers, "memory", "server RSS with 1..N participants in calls", __doc__
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--participants", type=int, default=8, help="participants joined, one at a time"
    )
    parser.add_argument("--fps", type=float, default=2.0, help="each client's frame rate")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.participants < 1:
        raise ValueError(f"--participants must be at least 1, got {args.participants}")
    rows = asyncio.run(measure(args.preset, args.checkpoint, args.participants, args.fps))
    table = Table("rss", "server RSS after each join", ["participants", "server_rss_mb", "styles"])
    for row in rows:
        table.add(**row)
    rss = [r["server_rss_mb"] for r in rows]
    slope = Table(
        "per_participant",
        "MB each participant adds (least-squares slope)",
        ["first_mb", "last_mb", "per_participant_mb"],
    )
    per = float(np.polyfit(range(1, len(rss) + 1), rss, 1)[0]) if len(rss) > 1 else None
    slope.add(first_mb=rss[0], last_mb=rss[-1], per_participant_mb=per)
    publish(args.out, "memory", [table, slope], args)
    return 0


async def measure(
    preset: str, checkpoint: Path | None, participants: int, fps: float
) -> list[dict[str, Any]]:
    from client.callclient import CallClient, CallConfig
    from models.checkpoint import load_models

    loaded = await asyncio.to_thread(load_models, preset, checkpoint, "cpu")
    styles = sorted(loaded.styles)
    del loaded
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cartooncodec-memory-") as folder:
        log = Path(folder) / "server.log"
        options = ["--max-rooms", str(participants), "--rooms-per-minute", str(participants)]
        server = served(preset, checkpoint, options, log)
        async with (
            server as (url, pid),
            httpx.AsyncClient(timeout=30.0, limits=NO_KEEPALIVE) as http,
        ):
            calls: list[asyncio.Task[Any]] = []
            clients: list[CallClient] = []
            room: dict[str, Any] = {}
            try:
                for index in range(participants):
                    if index % 2 == 0:
                        room = (await http.post(f"{url}/rooms")).json()
                    config = CallConfig(
                        server=url,
                        room=room["room"],
                        token=room["tokens"][index % 2],
                        preset=preset,
                        checkpoint=None if checkpoint is None else str(checkpoint),
                        fps=fps,
                        name=f"p{index}",
                        seed=index,
                    )
                    client = await asyncio.to_thread(CallClient, config)
                    clients.append(client)
                    calls.append(asyncio.create_task(client.run()))
                    await _rendered(http, url, room, index % 2, calls)
                    style = styles[index % len(styles)] if styles else ""
                    client.uplink.send_prompt(style)
                    await asyncio.sleep(SETTLE_S)
                    used = {c.styles.get(c.uplink.prompt_id, "") for c in clients}
                    rows.append(
                        {
                            "participants": index + 1,
                            "server_rss_mb": round(server_rss_mb(pid), 1),
                            "styles": len(used - {"", "none"}),
                        }
                    )
            finally:
                for client in clients:
                    client.stop()
                await asyncio.gather(*calls, return_exceptions=True)
    return rows


async def _rendered(
    http: Any, url: str, room: dict[str, Any], seat: int, calls: list[asyncio.Task[Any]]
) -> None:
    """Until the server holds the participant in ``seat`` with its renderer and reference:
    its frames are rendered, or, with nobody yet in the other seat, dropped for want of a
    viewer (which the worker counts only once the reference is set)."""
    headers = {"Authorization": f"Bearer {room['tokens'][0]}"}
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        if calls[-1].done():
            raise RuntimeError(f"a call ended before it rendered: {calls[-1].exception()!r}")
        stats = (await http.get(f"{url}/rooms/{room['room']}/stats", headers=headers)).json()
        seated = [p for p in stats.get("participants", []) if p["seat"] == seat]
        render = seated[0]["render"] if seated else {}
        if render.get("frames_rendered", 0) + render.get("frames_without_viewer", 0) > 0:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the server set up none of the participant's rendering within 120 s")
