"""Rooms of two seats: who may join (tokens), who is in, and how participants are paired.

Errors carry the HTTP status the app answers with: RoomNotFound 404, SeatTaken 409, RoomsFull
and JoinsBusy 503. A room is removed once both seats have joined and everyone has left, or, if
that never happens, once its tokens have expired and nobody is in it. A join reserves its seat
first, so a leave during someone's join cannot remove the room under them, and a failed join
frees it. At most ``max_connecting`` joins wait for their clients to connect, server-wide.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCSessionDescription

from pipeline import protocol
from server.keyframes import KeyframeDecodes
from server.participant import Participant
from server.settings import ServerSettings
from server.tokens import SEATS, TokenSigner

logger = logging.getLogger(__name__)


class RoomError(Exception):
    status = 400


class RoomNotFound(RoomError):
    status = 404


class SeatTaken(RoomError):
    status = 409


class RoomsFull(RoomError):
    status = 503


class JoinsBusy(RoomError):
    status = 503


@dataclass
class Room:
    id: str
    created_at: float = field(default_factory=time.time)
    expires_at: float = float("inf")  # when its tokens expire
    seats: list[Participant | None] = field(default_factory=lambda: [None] * SEATS)
    joining: set[int] = field(default_factory=set)  # seats reserved by a join in progress
    joined: set[int] = field(default_factory=set)  # seats that have been in the call

    def check_free(self, seat: int) -> None:
        if not 0 <= seat < SEATS:
            raise SeatTaken(f"room {self.id} has no seat {seat}")
        if self.seats[seat] is not None or seat in self.joining:
            raise SeatTaken(f"seat {seat} of room {self.id} is taken: this room is full")

    def claim(self, seat: int, participant: Participant) -> None:
        self.check_free(seat)
        self.seats[seat] = participant
        self.joined.add(seat)

    @property
    def empty(self) -> bool:
        return not self.joining and not self.participants

    @property
    def finished(self) -> bool:
        """Both seats have been in the call and everyone has left."""
        return self.empty and len(self.joined) == SEATS

    def release(self, participant: Participant) -> None:
        if self.seats[participant.seat] is participant:
            self.seats[participant.seat] = None
        self.pair()

    def pair(self) -> None:
        """Send each participant's rendered face to the other one's video track."""
        for seat, participant in enumerate(self.seats):
            if participant is None:
                continue
            viewer = self.seats[1 - seat]
            participant.worker.sink = None if viewer is None else viewer.outbound.push
            participant.audio_in.sink = None if viewer is None else viewer.audio_out.put

    @property
    def participants(self) -> list[Participant]:
        return [p for p in self.seats if p is not None]

    def stats(self) -> dict[str, Any]:
        return {
            "room": self.id,
            "created_at": self.created_at,
            "participants": [p.stats() for p in self.participants],
        }


class RoomRegistry:
    def __init__(
        self, settings: ServerSettings, signer: TokenSigner, renderer_factory: Callable[[], Any]
    ) -> None:
        self.settings = settings
        self.signer = signer
        self._renderer_factory = renderer_factory
        self.keyframes = KeyframeDecodes(
            settings.keyframe_decode_threads, settings.keyframe_queue, settings.max_keyframe_side
        )
        self.rooms: dict[str, Room] = {}
        self._unconnected: set[Participant] = set()  # answered (or answering), not yet connected

    def create(self, now: float | None = None) -> tuple[Room, list[str]]:
        now = time.time() if now is None else now
        self.expire(now)
        if len(self.rooms) >= self.settings.max_rooms:
            raise RoomsFull(f"the server holds {len(self.rooms)} rooms, its limit: try later")
        room = Room(id=secrets.token_urlsafe(8), created_at=now, expires_at=now + self.signer.ttl_s)
        self.rooms[room.id] = room
        tokens = [self.signer.issue(room.id, seat) for seat in range(SEATS)]
        logger.info("room %s created", room.id)
        return room, tokens

    def expire(self, now: float) -> None:
        """Remove empty rooms whose tokens have expired (rooms are kept in creation order)."""
        for room in list(self.rooms.values()):
            if room.expires_at > now:
                break
            if room.empty:
                del self.rooms[room.id]
                logger.info("room %s expired", room.id)

    def get(self, room_id: str) -> Room:
        self.expire(time.time())
        room = self.rooms.get(room_id)
        if room is None:
            raise RoomNotFound(f"no room {room_id!r}: create one with POST /rooms")
        return room

    async def join(
        self, room: Room, seat: int, offer: RTCSessionDescription
    ) -> RTCSessionDescription:
        """Seat a new participant and answer their offer; ValueError if the offer is unusable.

        The seat is reserved for the whole join and freed again if anything fails; the partner
        hears nothing of a failed join. Only the peer connection is built here: the participant
        builds its renderer once the connection is up."""
        room.check_free(seat)
        if self.connecting() >= self.settings.max_connecting:
            raise JoinsBusy(
                f"{self.settings.max_connecting} joins are waiting for their clients to "
                "connect, the server's limit: try again in a few seconds"
            )
        room.joining.add(seat)
        participant: Participant | None = None
        try:
            participant = Participant(
                room.id, seat, self.settings, self._renderer_factory, self.keyframes
            )
            self._unconnected.add(participant)
            answer = await participant.accept(offer)
        except BaseException:  # free the seat and the peer connection whatever failed
            if participant is not None:
                await participant.close()
            raise
        finally:
            room.joining.discard(seat)
            if room.finished:
                self.rooms.pop(room.id, None)
        participant.on_closed = lambda p: self._left(room, p)
        room.claim(seat, participant)
        room.pair()
        logger.info("room %s: seat %d joined", room.id, seat)
        return answer

    def connecting(self) -> int:
        """Participants answered (or being answered) whose clients have not connected yet:
        what dead-end joins hold until the connect timeout frees them."""
        self._unconnected = {
            p for p in self._unconnected if not (p.worker.started or p.closed.is_set())
        }
        return len(self._unconnected)

    def _left(self, room: Room, participant: Participant) -> None:
        room.release(participant)
        logger.info("room %s: seat %d left", room.id, participant.seat)
        for other in room.participants:
            other.send(protocol.CONTROL, protocol.encode_message("bye"))
        if room.finished:
            self.rooms.pop(room.id, None)
            logger.info("room %s closed", room.id)

    async def close_room(self, room_id: str) -> None:
        """End the room's calls and remove it (already gone, e.g. expired: nothing to do)."""
        room = self.rooms.pop(room_id, None)
        if room is not None:
            await asyncio.gather(*(p.close() for p in room.participants))

    async def close_all(self) -> None:
        for room_id in list(self.rooms):
            await self.close_room(room_id)
        self.keyframes.close()
