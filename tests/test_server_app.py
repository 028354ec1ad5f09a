"""HTTP signaling: every refusal with its status and message (no peer connection needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import MAX_OFFER_BYTES, create_app
from server.settings import ServerSettings
from server.tokens import TokenSigner
from tests.tinycall import make_offer

SECRET = b"test-secret"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ServerSettings(preset="tiny", token_secret=SECRET))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def new_room(http: httpx.AsyncClient) -> dict:
    response = await http.post("/rooms")
    assert response.status_code == 200
    return response.json()


async def test_health(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")
    assert response.json() == {"status": "ok", "preset": "tiny", "rooms": 0}


async def test_room_has_two_signed_tokens(http: httpx.AsyncClient) -> None:
    room = await new_room(http)
    grants = [TokenSigner(SECRET).verify(token, room["room"]) for token in room["tokens"]]
    assert [g.seat for g in grants] == [0, 1]
    stats = (await http.get(f"/rooms/{room['room']}/stats")).json()
    assert stats["room"] == room["room"] and stats["participants"] == []


async def test_unknown_room_is_404(http: httpx.AsyncClient) -> None:
    body = {"token": "x.y", "sdp": "v=0", "type": "offer"}
    response = await http.post("/rooms/nope/offer", json=body)
    assert response.status_code == 404 and "no room 'nope'" in response.json()["detail"]
    assert (await http.get("/rooms/nope/stats")).status_code == 404


@pytest.mark.parametrize("kind", ["forged", "expired", "other room"])
async def test_bad_tokens_are_403(http: httpx.AsyncClient, kind: str) -> None:
    room = await new_room(http)
    token = {
        "forged": TokenSigner(b"wrong").issue(room["room"], 0),
        "expired": TokenSigner(SECRET, ttl_s=1).issue(room["room"], 0, now=0.0),
        "other room": (await new_room(http))["tokens"][0],
    }[kind]
    body = {"token": token, "sdp": await make_offer(), "type": "offer"}
    response = await http.post(f"/rooms/{room['room']}/offer", json=body)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"token": "t", "type": "offer"}', "needs a string 'sdp'"),
        (b"x" * (MAX_OFFER_BYTES + 1), "exceeds"),
    ],
)
async def test_malformed_json_is_400(http: httpx.AsyncClient, content: bytes, message: str) -> None:
    room = await new_room(http)
    response = await http.post(f"/rooms/{room['room']}/offer", content=content)
    assert response.status_code == 400 and message in response.json()["detail"]


@pytest.mark.parametrize(
    ("sdp", "kind", "message"),
    [
        ("garbage", "offer", "no video section"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nm=application x\r\n", "offer", "cannot parse"),
        (None, "answer", "type must be 'offer'"),
        ("no-datachannel", "offer", "no application section"),
        ("no-ice", "offer", "lacks ICE credentials"),
    ],
)
async def test_malformed_sdp_is_400(
    http: httpx.AsyncClient, sdp: str | None, kind: str, message: str
) -> None:
    room = await new_room(http)
    if sdp is None:
        sdp = await make_offer()
    elif sdp == "no-datachannel":
        sdp = await make_offer(data_channel=False)
    elif sdp == "no-ice":
        sdp = "\r\n".join(
            line for line in (await make_offer()).split("\r\n") if not line.startswith("a=ice-")
        )
    body = {"token": room["tokens"][0], "sdp": sdp, "type": kind}
    response = await http.post(f"/rooms/{room['room']}/offer", json=body)
    assert response.status_code == 400 and message in response.json()["detail"]
