from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from server.participant import Participant
from server.rooms import JoinsBusy, Room, RoomNotFound, RoomRegistry, SeatTaken
from server.settings import ServerSettings
from server.tokens import TokenSigner
from tests.tinycall import make_offer


def fake_participant(seat: int) -> Any:
    """Just what Room touches: the seat, the worker's and the incoming sound's sinks, and the
    outbound tracks' push and put."""
    return SimpleNamespace(
        seat=seat,
        worker=SimpleNamespace(sink=None),
        outbound=SimpleNamespace(push=f"push{seat}"),
        audio_in=SimpleNamespace(sink=None),
        audio_out=SimpleNamespace(put=f"put{seat}"),
    )


def test_seats_pair_and_unpair() -> None:
    room = Room(id="r")
    alice, bob = fake_participant(0), fake_participant(1)
    room.claim(0, alice)
    room.pair()
    assert alice.worker.sink is None  # nobody to show alice to yet
    room.claim(1, bob)
    room.pair()
    assert (alice.worker.sink, bob.worker.sink) == ("push1", "push0")
    assert (alice.audio_in.sink, bob.audio_in.sink) == ("put1", "put0")  # and each one's sound
    room.release(bob)
    assert alice.worker.sink is None and room.participants == [alice]
    assert alice.audio_in.sink is None


def test_taken_seat_is_refused() -> None:
    room = Room(id="r")
    room.claim(0, fake_participant(0))
    with pytest.raises(SeatTaken, match="seat 0 of room r is taken"):
        room.claim(0, fake_participant(0))
    assert SeatTaken.status == 409


def test_registry_creates_rooms_with_a_token_per_seat() -> None:
    signer = TokenSigner(b"s")
    registry = RoomRegistry(ServerSettings(), signer, renderer_factory=lambda: None)
    room, tokens = registry.create()
    assert registry.get(room.id) is room
    assert [signer.verify(t, room.id).seat for t in tokens] == [0, 1]
    with pytest.raises(RoomNotFound, match="no room 'missing'"):
        registry.get("missing")
    assert RoomNotFound.status == 404


def test_rooms_nobody_joins_expire_with_their_tokens() -> None:
    registry = RoomRegistry(ServerSettings(), TokenSigner(b"s", ttl_s=60), lambda: None)
    old, _ = registry.create(now=1000.0)
    occupied, _ = registry.create(now=1001.0)
    occupied.claim(0, fake_participant(0))
    fresh, _ = registry.create(now=1070.0)  # old and occupied are past their expiry now
    assert list(registry.rooms) == [occupied.id, fresh.id]
    with pytest.raises(RoomNotFound, match=f"no room {old.id!r}"):
        registry.get(old.id)


def test_one_seat_leaving_keeps_the_room_for_the_other_seat() -> None:
    registry = RoomRegistry(ServerSettings(), TokenSigner(b"s"), lambda: None)
    room, _ = registry.create()
    alice = fake_participant(0)
    alice.send = lambda label, message: None
    room.claim(0, alice)
    registry._left(room, alice)  # seat 1 never came: its token must still find the room
    assert registry.get(room.id) is room
    bob = fake_participant(1)
    bob.send = lambda label, message: None
    room.claim(1, bob)
    registry._left(room, bob)  # both seats have been in the call and left: the call is over
    with pytest.raises(RoomNotFound):
        registry.get(room.id)


async def test_a_leave_during_a_join_does_not_remove_the_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answering, release = asyncio.Event(), asyncio.Event()
    accept = Participant.accept

    async def slow_accept(self: Participant, offer: RTCSessionDescription) -> Any:
        answering.set()
        await release.wait()
        return await accept(self, offer)

    monkeypatch.setattr(Participant, "accept", slow_accept)
    registry = RoomRegistry(ServerSettings(), TokenSigner(b"s"), never_built)
    room, _ = registry.create()
    alice = fake_participant(0)
    alice.send = lambda label, message: None
    room.claim(0, alice)
    joining = asyncio.create_task(
        registry.join(room, 1, RTCSessionDescription(await make_offer(), "offer"))
    )
    await asyncio.wait_for(answering.wait(), 10)
    with pytest.raises(SeatTaken, match="seat 1 of room .* is taken"):
        room.check_free(1)
    registry._left(room, alice)  # alice leaves while bob's join is under way
    release.set()
    answer = await joining
    assert answer.type == "answer" and registry.get(room.id) is room
    assert room.participants[0].seat == 1
    await registry.close_all()
    assert registry.rooms == {}


def never_built() -> Any:
    raise AssertionError("a renderer was built before the connection was up")


async def test_a_join_builds_no_renderer_until_the_connection_is_up() -> None:
    """236 dead-end joins used to hold a full renderer each (RSS 97 MB -> 3.1 GB)."""
    registry = RoomRegistry(ServerSettings(), TokenSigner(b"s"), never_built)
    room, _ = registry.create()
    answer = await registry.join(room, 0, RTCSessionDescription(await make_offer(), "offer"))
    assert answer.type == "answer"
    (joined,) = room.participants
    assert joined.stats()["render"]["renderer"] == "not built"
    await registry.close_all()  # the client never connected: nothing was built, nothing raised


async def test_a_failed_join_releases_its_reservation() -> None:
    registry = RoomRegistry(ServerSettings(), TokenSigner(b"s"), never_built)
    room, _ = registry.create()
    offer = await make_offer()
    no_mid = "\r\n".join(line for line in offer.split("\r\n") if line != "a=mid:0")
    with pytest.raises(ValueError, match="cannot answer this offer"):
        await registry.join(room, 0, RTCSessionDescription(no_mid, "offer"))
    room.check_free(0)
    assert registry.get(room.id) is room and room.joining == set()


async def test_close_all_survives_rooms_expiring_under_it() -> None:
    """close_room looked rooms up through get(), which expires others: close_all then raised."""
    registry = RoomRegistry(ServerSettings(), TokenSigner(b"s", ttl_s=60), never_built)
    for now in (1000.0, 1001.0):
        registry.create(now=now)
    await registry.close_all()  # both expired long ago: removed, nothing raised
    assert registry.rooms == {}
    await registry.close_room("gone")


async def test_joins_waiting_to_connect_are_bounded_server_wide() -> None:
    """1,000 dead-end joins held a peer connection each for the connect timeout (+200 MB)."""
    settings = ServerSettings(max_connecting=2)
    unused_renderer = SimpleNamespace(close=lambda: None)
    registry = RoomRegistry(settings, TokenSigner(b"s"), lambda: unused_renderer)
    offer = RTCSessionDescription(await make_offer(), "offer")
    rooms = [registry.create()[0] for _ in range(4)]
    for room in rooms[:2]:
        await registry.join(room, 0, offer)
    assert registry.connecting() == 2
    with pytest.raises(JoinsBusy, match="2 joins are waiting for their clients to connect"):
        await registry.join(rooms[2], 0, offer)
    assert JoinsBusy.status == 503 and rooms[2].empty  # refused before any seat was taken
    rooms[0].participants[0].worker.start()  # its client connected
    await registry.join(rooms[2], 0, offer)
    await registry.close_room(rooms[1].id)  # a dead end gone (connect timeout, or ICE failed)
    assert registry.connecting() == 1
    await registry.join(rooms[3], 0, offer)
    await registry.close_all()
    assert registry.connecting() == 0
