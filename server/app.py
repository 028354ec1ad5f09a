"""HTTP signaling: create rooms, exchange one SDP offer/answer per participant, report stats.

    POST /rooms                 -> {"room": id, "tokens": [seat0, seat1], "expires_in": s}
    POST /rooms/{room}/offer    {"token", "sdp", "type": "offer"[, "render": "server"|"local"]}
                                -> {"sdp", "type": "answer"}
    GET  /rooms/{room}/stats    -> per-participant fps, uplink kbps, render ms, latency
                                   (needs "Authorization: Bearer <a token of the room>")
    GET  /health                -> {"status": "ok", ...}

Errors: 400 malformed JSON or SDP, 401 missing API key (when the server has one) or stats
token, 403 bad or expired token, 404 unknown room, 409 seat taken, 429 too many rooms from one
client, 503 room limit reached; each with {"detail": message}, which never shows a server path.
Bodies are read up to MAX_OFFER_BYTES, no further. ``check_models`` is run before serving: a
server whose weights do not load does not start.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiortc import RTCSessionDescription
from aiortc.sdp import SessionDescription
from fastapi import FastAPI, HTTPException, Request

from pipeline.ice import use_loopback_ice
from pipeline.meters import RateMeter
from pipeline.protocol import RENDER_MODES, ProtocolError, excerpt, load_json, redact_paths
from server.networks import SharedNetworks
from server.participant import NEGOTIATION_ERRORS
from server.rooms import RoomError, RoomRegistry
from server.settings import ServerSettings
from server.tokens import TokenError, TokenSigner, secret_from_env

logger = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
API_KEY_HEADER = "X-API-Key"
ROOM_RATE_WINDOW_S = 60.0


def check_models(settings: ServerSettings) -> None:
    """Build the preset's networks from the checkpoint once, on the CPU, and drop them; a
    ValueError naming the file if they do not load (unreadable, another architecture or
    preset), so that the server refuses to start rather than failing every call."""
    from models.checkpoint import load_models

    try:
        load_models(settings.preset, settings.checkpoint, device="cpu")
    except ValueError as exc:
        raise ValueError(f"cannot serve preset {settings.preset!r}: {exc}") from exc


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    if settings.loopback_ice:
        use_loopback_ice()
    signer = TokenSigner(settings.token_secret or secret_from_env(), ttl_s=settings.token_ttl_s)
    networks = SharedNetworks(settings)
    registry = RoomRegistry(settings, signer, networks.renderer)

    async def sweep_rooms() -> None:
        """Rooms whose tokens have expired go even when no request comes to expire them."""
        while True:
            await asyncio.sleep(settings.room_sweep_s)
            registry.expire(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeping = asyncio.create_task(sweep_rooms(), name="sweep-rooms")
        try:
            yield
        finally:
            sweeping.cancel()
            await asyncio.gather(sweeping, return_exceptions=True)
            await registry.close_all()

    app = FastAPI(title="CartoonCodec signaling", lifespan=lifespan)
    app.state.registry = registry
    app.state.networks = networks
    app.state.settings = settings

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "preset": settings.preset, "rooms": len(registry.rooms)}

    creations: dict[str, RateMeter] = {}  # client address -> its recent POST /rooms

    @app.post("/rooms")
    async def create_room(request: Request) -> dict[str, Any]:
        given = request.headers.get(API_KEY_HEADER, "")
        if settings.api_key and not hmac.compare_digest(given, settings.api_key):
            raise HTTPException(401, f"creating rooms needs the server's {API_KEY_HEADER} header")
        _count_creation(creations, request, settings.rooms_per_client_per_minute)
        try:
            room, tokens = registry.create()
        except RoomError as exc:
            raise _refusal(exc.status, exc) from exc
        return {"room": room.id, "tokens": tokens, "expires_in": signer.ttl_s}

    @app.post("/rooms/{room_id}/offer")
    async def offer(room_id: str, request: Request) -> dict[str, str]:
        body = await _read_offer(request)
        try:
            room = registry.get(room_id)
            grant = signer.verify(body["token"], room_id)
            render_locally = body.get("render", RENDER_MODES[0]) == "local"
            offer = _parse_offer(body, render_locally)
            answer = await registry.join(room, grant.seat, offer, render_locally)
        except TokenError as exc:
            raise _refusal(403, exc) from exc
        except RoomError as exc:
            raise _refusal(exc.status, exc) from exc
        except ValueError as exc:
            raise _refusal(400, exc, "unusable offer: ") from exc
        return {"sdp": answer.sdp, "type": answer.type}

    @app.get("/rooms/{room_id}/stats")
    async def stats(room_id: str, request: Request) -> dict[str, Any]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, 'stats need a token of the room: "Authorization: Bearer <t>"')
        try:
            signer.verify(token, room_id)
            return registry.get(room_id).stats()
        except TokenError as exc:
            raise _refusal(403, exc) from exc
        except RoomError as exc:
            raise _refusal(exc.status, exc) from exc

    return app


@asynccontextmanager
async def running_server(settings: ServerSettings, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``create_app(settings)`` with uvicorn on an ephemeral port of ``host`` inside this
    event loop (demo, tests); yields the base URL and shuts the server down on exit."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=host, port=0, log_level="warning")
    )
    await asyncio.to_thread(check_models, settings)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                raise RuntimeError(f"the server did not start on {host}: {serving.exception()}")
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await serving


def _refusal(status: int, exc: Exception, prefix: str = "") -> HTTPException:
    """The HTTP error for a refused request: the reason, without any server path in it."""
    return HTTPException(status, redact_paths(f"{prefix}{exc}"))


def _count_creation(creations: dict[str, RateMeter], request: Request, per_minute: int) -> None:
    """429 once the client's address has created ``per_minute`` rooms in the last minute."""
    now = asyncio.get_running_loop().time()
    for address in [a for a, meter in creations.items() if meter.per_second(now) == 0]:
        del creations[address]  # forget idle clients, so the table stays as small as the traffic
    address = request.client.host if request.client is not None else ""
    meter = creations.setdefault(address, RateMeter(window_s=ROOM_RATE_WINDOW_S))
    if meter.per_second(now) * ROOM_RATE_WINDOW_S >= per_minute:
        raise HTTPException(429, f"at most {per_minute} rooms per minute per client: try later")
    meter.add(now=now)


async def _read_body(request: Request) -> bytes:
    """The request body, refused as soon as it passes MAX_OFFER_BYTES (never held whole)."""
    raw = bytearray()
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_OFFER_BYTES:
            raise HTTPException(400, f"offer body exceeds {MAX_OFFER_BYTES} bytes")
    return bytes(raw)


async def _read_offer(request: Request) -> dict[str, str]:
    try:
        body = load_json(await _read_body(request))
    except ProtocolError as exc:
        raise HTTPException(400, f"body is {exc}") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, 'body must be a JSON object {"token", "sdp", "type"}')
    for key in ("token", "sdp", "type"):
        if not isinstance(body.get(key), str):
            raise HTTPException(400, f"body needs a string {key!r}")
    if body.get("render", RENDER_MODES[0]) not in RENDER_MODES:
        modes = " or ".join(repr(mode) for mode in RENDER_MODES)
        raise HTTPException(400, f"'render' must be {modes}, got {excerpt(body['render'])}")
    return body


def _parse_offer(body: dict[str, str], render_locally: bool) -> RTCSessionDescription:
    """ValueError unless the body holds a complete SDP offer (ICE credentials, DTLS
    fingerprint) with data channels, and a video section unless the client renders locally;
    checked before any seat is taken."""
    if body["type"] != "offer":
        raise ValueError(f"type must be 'offer', got {body['type']!r}")
    try:
        parsed = SessionDescription.parse(body["sdp"])
    except NEGOTIATION_ERRORS as exc:
        raise ValueError(f"cannot parse the SDP ({type(exc).__name__}: {exc})") from exc
    kinds = {media.kind for media in parsed.media}
    needs = [("application", "data channels")]
    if not render_locally:
        needs.insert(0, ("video", 'a receive-only video transceiver, or "render": "local"'))
    for kind, need in needs:
        if kind not in kinds:
            raise ValueError(f"offer has no {kind} section: add {need}")
    for media in parsed.media:
        if media.ice is None or not (media.ice.usernameFragment and media.ice.password):
            raise ValueError(f"{media.kind} section lacks ICE credentials (a=ice-ufrag/ice-pwd)")
        if media.dtls is None or not media.dtls.fingerprints:
            raise ValueError(f"{media.kind} section lacks a DTLS fingerprint (a=fingerprint)")
    return RTCSessionDescription(sdp=body["sdp"], type="offer")
