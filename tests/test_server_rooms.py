from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from server.rooms import Room, RoomNotFound, RoomRegistry, SeatTaken
from server.settings import ServerSettings
from server.tokens import TokenSigner


def fake_participant(seat: int) -> Any:
    """Just what Room touches: the seat, the worker's sink and the outbound track's push."""
    return SimpleNamespace(
        seat=seat, worker=SimpleNamespace(sink=None), outbound=SimpleNamespace(push=f"push{seat}")
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
    room.release(bob)
    assert alice.worker.sink is None and room.participants == [alice]


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
