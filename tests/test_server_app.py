"""HTTP signaling: every refusal with its status and message (no peer connection needed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.app import MAX_OFFER_BYTES, _refusal, check_models, create_app, running_server
from server.settings import ServerSettings
from server.tokens import TokenSigner
from tests.tinycall import make_offer, write_styled_checkpoint

SECRET = b"test-secret"


async def serve(settings: ServerSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await app.state.registry.close_all()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async for client in serve(ServerSettings(preset="tiny", token_secret=SECRET)):
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
    stats = (await http.get(f"/rooms/{room['room']}/stats", headers=bearer(room))).json()
    assert stats["room"] == room["room"] and stats["participants"] == []


def bearer(room: dict, seat: int = 0) -> dict[str, str]:
    return {"Authorization": f"Bearer {room['tokens'][seat]}"}


async def test_stats_need_a_token_of_the_room(http: httpx.AsyncClient) -> None:
    room, other = await new_room(http), await new_room(http)
    url = f"/rooms/{room['room']}/stats"
    anonymous = await http.get(url)
    assert anonymous.status_code == 401
    assert (
        anonymous.json()["detail"] == 'stats need a token of the room: "Authorization: Bearer <t>"'
    )
    assert (await http.get(url, headers={"Authorization": "Basic x"})).status_code == 401
    wrong_room = await http.get(url, headers=bearer(other))
    assert wrong_room.status_code == 403 and wrong_room.json()["detail"] == (
        "token is for another room"
    )
    assert (await http.get(url, headers=bearer(room, seat=1))).status_code == 200


async def test_unknown_room_is_404(http: httpx.AsyncClient) -> None:
    body = {"token": "x.y", "sdp": "v=0", "type": "offer"}
    response = await http.post("/rooms/nope/offer", json=body)
    assert response.status_code == 404 and "no room 'nope'" in response.json()["detail"]
    token = {"Authorization": f"Bearer {TokenSigner(SECRET).issue('nope', 0)}"}
    assert (await http.get("/rooms/nope/stats", headers=token)).status_code == 404


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
        (b'{"token": ' + b"[" * 3000 + b"]" * 3000 + b"}", "not JSON: nested deeper than 8"),
        (b'{"token": ' + b"9" * 5000 + b"}", "not JSON: integer of 5000 digits"),
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
        ("a=rtpmap:98", "offer", "cannot parse the SDP (StopIteration"),
        ("a=rtcp-fb:", "offer", "cannot parse the SDP (AttributeError"),
        ("a=mid:0", "offer", "cannot answer this offer (AttributeError"),
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
    elif sdp.startswith("a="):  # the first line starting so, cut as aiortc cannot take it
        prefix, sdp = sdp, await make_offer()
        lines = sdp.split("\r\n")
        at = next(i for i, line in enumerate(lines) if line.startswith(prefix))
        cut = {"a=rtpmap:98": ["a="], "a=rtcp-fb:": ["a=rtcp-fb"], "a=mid:0": []}[prefix]
        sdp = "\r\n".join(lines[:at] + cut + lines[at + 1 :])
    body = {"token": room["tokens"][0], "sdp": sdp, "type": kind}
    response = await http.post(f"/rooms/{room['room']}/offer", json=body)
    assert response.status_code == 400 and message in response.json()["detail"]


async def test_the_render_mode_is_chosen_at_join(http: httpx.AsyncClient) -> None:
    room = await new_room(http)
    no_video = await make_offer(video=False)
    offer = {"sdp": no_video, "type": "offer"}
    url = f"/rooms/{room['room']}/offer"
    needs_video = await http.post(url, json={"token": room["tokens"][0], **offer})
    assert needs_video.status_code == 400
    assert (
        'no video section: add a receive-only video transceiver, or "render": "local"'
        in (needs_video.json()["detail"])
    )
    unknown = await http.post(url, json={"token": room["tokens"][0], **offer, "render": "gpu"})
    assert unknown.status_code == 400
    assert unknown.json()["detail"] == "'render' must be 'server' or 'local', got 'gpu'"
    local = await http.post(url, json={"token": room["tokens"][0], **offer, "render": "local"})
    assert local.status_code == 200 and "m=video" not in local.json()["sdp"]


async def test_a_failed_join_frees_its_seat(http: httpx.AsyncClient) -> None:
    """An offer aiortc cannot answer used to give 500 and keep the seat (409 for good)."""
    room = await new_room(http)
    offer = await make_offer()
    no_mid = "\r\n".join(line for line in offer.split("\r\n") if line != "a=mid:0")
    url = f"/rooms/{room['room']}/offer"
    body = {"token": room["tokens"][0], "sdp": no_mid, "type": "offer"}
    refused = await http.post(url, json=body)
    assert refused.status_code == 400
    assert "unusable offer: cannot answer this offer" in refused.json()["detail"]
    joined = await http.post(url, json={**body, "sdp": offer})
    assert joined.status_code == 200 and joined.json()["type"] == "answer"


async def test_huge_body_is_cut_while_streaming(http: httpx.AsyncClient) -> None:
    room = await new_room(http)
    pulled = []

    async def body() -> AsyncIterator[bytes]:
        for index in range(6400):  # 100 MiB if read whole
            pulled.append(index)
            yield b"x" * 16384

    response = await http.post(f"/rooms/{room['room']}/offer", content=body())
    assert response.status_code == 400
    assert response.json()["detail"] == f"offer body exceeds {MAX_OFFER_BYTES} bytes"
    assert len(pulled) <= MAX_OFFER_BYTES // 16384 + 2


async def test_room_creation_is_limited() -> None:
    settings = ServerSettings(
        preset="tiny", token_secret=SECRET, max_rooms=3, rooms_per_client_per_minute=2
    )
    async for http in serve(settings):
        assert [(await http.post("/rooms")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await http.post("/rooms")).json() == {
            "detail": "at most 2 rooms per minute per client: try later"
        }
        other = {"X-Forwarded-For": "ignored"}  # the address counts, not what a client says
        assert (await http.post("/rooms", headers=other)).status_code == 429


async def test_total_rooms_and_api_key() -> None:
    settings = ServerSettings(preset="tiny", token_secret=SECRET, max_rooms=1, api_key="k")
    async for http in serve(settings):
        anonymous = await http.post("/rooms")
        assert anonymous.status_code == 401
        assert anonymous.json()["detail"] == "creating rooms needs the server's X-API-Key header"
        assert (await http.post("/rooms", headers={"X-API-Key": "wrong"})).status_code == 401
        assert (await http.post("/rooms", headers={"X-API-Key": "k"})).status_code == 200
        full = await http.post("/rooms", headers={"X-API-Key": "k"})
        assert full.status_code == 503
        assert full.json()["detail"] == "the server holds 1 rooms, its limit: try later"


def test_a_server_whose_checkpoint_does_not_load_does_not_start(tmp_path: Path) -> None:
    broken = tmp_path / "lite-128.pt"
    broken.write_bytes(b"not torch")
    with pytest.raises(ValueError, match=f"cannot serve preset 'tiny': checkpoint {broken}"):
        check_models(ServerSettings(preset="tiny", checkpoint=str(broken)))
    other = write_styled_checkpoint(tmp_path / "tiny.pt")  # a tiny checkpoint for lite-128
    with pytest.raises(ValueError, match="cannot serve preset 'lite-128'"):
        check_models(ServerSettings(preset="lite-128", checkpoint=str(other)))
    check_models(ServerSettings(preset="tiny", checkpoint=str(other)))


async def test_running_server_checks_the_checkpoint_first(tmp_path: Path) -> None:
    broken = tmp_path / "x.pt"
    broken.write_bytes(b"")
    with pytest.raises(ValueError, match="is not a readable torch file"):
        async with running_server(ServerSettings(preset="tiny", checkpoint=str(broken))):
            raise AssertionError("served")


def test_http_errors_carry_no_server_path() -> None:
    refusal = _refusal(400, ValueError("checkpoint /srv/models/weights/lite-128.pt gone"), "x: ")
    assert (refusal.status_code, refusal.detail) == (400, "x: checkpoint lite-128.pt gone")


async def test_expired_rooms_go_without_any_request_to_expire_them() -> None:
    settings = ServerSettings(preset="tiny", token_ttl_s=0.3, room_sweep_s=0.05)
    async with running_server(settings) as url, httpx.AsyncClient(base_url=url) as http:
        for _ in range(3):
            assert (await http.post("/rooms")).status_code == 200
        assert (await http.get("/health")).json()["rooms"] == 3
        await asyncio.sleep(0.8)  # nothing but the server's own sweep in between
        assert (await http.get("/health")).json()["rooms"] == 0
