"""Two real aiortc peers on loopback, with the SCTP transport of pipeline/sctp.py (or aiortc's
own): what each sends on the wire, SCTP packet by SCTP packet, and what arrives."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import (
    Chunk,
    DataChunk,
    ForwardTsnChunk,
    HeartbeatAckChunk,
    HeartbeatChunk,
    RTCSctpTransport,
    SackChunk,
    parse_packet,
)

from pipeline.ice import use_loopback_ice
from pipeline.sctp import (
    LEAN_SCTP_ENV,
    SACK_DELAY_S,
    LeanSctpTransport,
    lean_sctp_requested,
    use_lean_sctp,
)

MOTION, CONTROL = "motion", "control"
Packet = list[Chunk]


class Wire:
    """The SCTP packets each DTLS transport sends, parsed; ``lose`` says which to drop."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: dict[int, list[Packet]] = defaultdict(list)
        self.lost: list[Packet] = []
        self.lose: Callable[[Packet], bool] = lambda packet: False
        send = RTCDtlsTransport._send_data

        async def recording(dtls: RTCDtlsTransport, data: bytes) -> None:
            packet = parse_packet(data)[3]
            if self.lose(packet):
                self.lost.append(packet)
                return
            self.sent[id(dtls)].append(packet)
            await send(dtls, data)

        monkeypatch.setattr(RTCDtlsTransport, "_send_data", recording)

    def packets(self, pc: RTCPeerConnection) -> list[Packet]:
        assert pc.sctp is not None
        return self.sent[id(pc.sctp.transport)]


def count(packets: list[Packet], *kinds: type[Chunk]) -> int:
    """How many of ``packets`` carry a chunk of each of ``kinds``."""
    return sum(all(any(isinstance(c, kind) for c in p) for kind in kinds) for p in packets)


def sacks_alone(packets: list[Packet]) -> int:
    return sum(all(isinstance(c, SackChunk) for c in p) for p in packets)


@dataclass
class Peers:
    """An offerer and an answerer, each with a ``motion`` (unordered, no retransmission) and a
    ``control`` (reliable) channel; what each receives, by label, in arrival order."""

    offerer: RTCPeerConnection
    answerer: RTCPeerConnection
    channels: dict[str, dict[str, RTCDataChannel]] = field(default_factory=dict)
    received: dict[str, dict[str, list[str | bytes]]] = field(default_factory=dict)

    async def arrived(self, side: str, label: str, n: int) -> list[str | bytes]:
        """The first ``n`` messages ``side`` received on ``label``, once they are there."""
        while len(self.received[side][label]) < n:
            await asyncio.sleep(0.01)
        return self.received[side][label][:n]


@asynccontextmanager
async def connected_peers(lean: bool = True) -> AsyncIterator[Peers]:
    use_loopback_ice()
    use_lean_sctp(lean)
    peers = Peers(RTCPeerConnection(), RTCPeerConnection())
    try:
        for side in ("offerer", "answerer"):
            peers.channels[side] = {}
            peers.received[side] = {MOTION: [], CONTROL: []}
        opened = asyncio.Event()

        def keep(side: str, channel: RTCDataChannel) -> None:
            peers.channels[side][channel.label] = channel
            channel.on("message", peers.received[side][channel.label].append)

        @peers.answerer.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            keep("answerer", channel)
            if len(peers.channels["answerer"]) == 2:
                opened.set()

        keep("offerer", peers.offerer.createDataChannel(MOTION, ordered=False, maxRetransmits=0))
        keep("offerer", peers.offerer.createDataChannel(CONTROL))
        await peers.offerer.setLocalDescription(await peers.offerer.createOffer())
        await peers.answerer.setRemoteDescription(peers.offerer.localDescription)
        await peers.answerer.setLocalDescription(await peers.answerer.createAnswer())
        await peers.offerer.setRemoteDescription(peers.answerer.localDescription)
        await asyncio.wait_for(opened.wait(), 10)
        while any(c.readyState != "open" for c in peers.channels["offerer"].values()):
            await asyncio.sleep(0.01)
        yield peers
    finally:
        await peers.offerer.close()
        await peers.answerer.close()
        use_loopback_ice(False)
        use_lean_sctp()


def messages(n: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiortc"])
async def test_a_sack_every_second_data_packet(monkeypatch: pytest.MonkeyPatch, lean: bool) -> None:
    wire = Wire(monkeypatch)
    async with connected_peers(lean) as peers:
        assert isinstance(peers.answerer.sctp, LeanSctpTransport if lean else RTCSctpTransport)
        sent = {MOTION: messages(20, "m"), CONTROL: messages(20, "c")}
        for motion, control in zip(sent[MOTION], sent[CONTROL], strict=True):
            peers.channels["offerer"][MOTION].send(motion)
            peers.channels["offerer"][CONTROL].send(control)
            await asyncio.sleep(0.01)
        assert await peers.arrived("answerer", CONTROL, 20) == sent[CONTROL]
        assert sorted(await peers.arrived("answerer", MOTION, 20)) == sorted(sent[MOTION])
        await asyncio.sleep(0.3)  # the last delayed SACK
        data = count(wire.packets(peers.offerer), DataChunk)
        sacks = count(wire.packets(peers.answerer), SackChunk)
    assert data >= 42  # the 40 messages and the two channels' opening
    if lean:
        assert sacks <= data // 2 + 2  # + the odd packet out, + the answer to the opening
    else:
        assert sacks == data  # aiortc: one for each


async def test_a_lone_packet_is_acknowledged_after_the_delay() -> None:
    async with connected_peers() as peers:
        await asyncio.sleep(SACK_DELAY_S)  # the opening's SACKs are out
        sctp = peers.offerer.sctp
        assert sctp is not None
        start = time.monotonic()
        peers.channels["offerer"][CONTROL].send("alone")
        await peers.arrived("answerer", CONTROL, 1)
        while sctp._sent_queue:
            await asyncio.sleep(0.005)
        waited = time.monotonic() - start
    # delayed (aiortc's own acknowledges in a few ms), and not left to T3 (1 s at least)
    assert SACK_DELAY_S * 0.9 <= waited < 0.9


@pytest.mark.parametrize("without_data", ["heartbeat", "sack"])
async def test_a_packet_without_data_does_not_hasten_the_sack(
    monkeypatch: pytest.MonkeyPatch, without_data: str
) -> None:
    """Only packets of DATA count towards "every second packet": a HEARTBEAT (as browsers send)
    or a SACK alone arriving while a SACK waits leaves it waiting."""
    wire = Wire(monkeypatch)
    async with connected_peers() as peers:
        await asyncio.sleep(SACK_DELAY_S * 1.5)  # the opening's SACKs are out
        sctp = peers.offerer.sctp
        assert sctp is not None
        answered = len(wire.packets(peers.answerer))
        start = time.monotonic()
        peers.channels["offerer"][CONTROL].send("alone")
        await peers.arrived("answerer", CONTROL, 1)
        if without_data == "heartbeat":
            await sctp._send_chunk(HeartbeatChunk())
        else:
            await RTCSctpTransport._send_sack(sctp)  # a SACK alone, as aiortc builds it
        sent_without_data = time.monotonic() - start
        while sctp._sent_queue:
            await asyncio.sleep(0.005)
        waited = time.monotonic() - start
        await asyncio.sleep(SACK_DELAY_S * 1.5)  # anything else the answerer sends
        answers = [[type(c) for c in p] for p in wire.packets(peers.answerer)[answered:]]
    assert sent_without_data < SACK_DELAY_S / 2  # while the SACK waited
    if without_data == "heartbeat":
        assert answers == [[HeartbeatAckChunk], [SackChunk]]
    else:
        assert answers == [[SackChunk]]
    assert SACK_DELAY_S * 0.9 <= waited < 0.9  # delayed, as for a lone packet


async def test_a_waiting_sack_rides_on_the_data_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    wire = Wire(monkeypatch)
    async with connected_peers() as peers:
        offerer, answerer = peers.channels["offerer"], peers.channels["answerer"]
        answerer[CONTROL].on("message", answerer[CONTROL].send)  # an echo
        sent = messages(20)
        for i, message in enumerate(sent):  # ping-pong: each side always owes a SACK
            offerer[CONTROL].send(message)
            await peers.arrived("offerer", CONTROL, i + 1)
        assert peers.received["offerer"][CONTROL] == sent
        await asyncio.sleep(0.3)
        for pc in (peers.offerer, peers.answerer):
            packets = wire.packets(pc)
            assert count(packets, SackChunk, DataChunk) >= 19  # all but the first message
            assert sacks_alone(packets) <= 2  # the opening's, the last delayed one
            # control chunks first (RFC 4960 section 6.10)
            assert all(isinstance(p[0], SackChunk) for p in packets if len(p) > 1)


async def test_a_lost_reliable_packet_is_sacked_at_once_and_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire = Wire(monkeypatch)
    async with connected_peers() as peers:
        sent = messages(20)
        lost = sent[5].encode()
        wire.lose = lambda packet: (
            not wire.lost and any(isinstance(c, DataChunk) and c.user_data == lost for c in packet)
        )
        for message in sent:
            peers.channels["offerer"][CONTROL].send(message)
            await asyncio.sleep(0.02)
        assert await asyncio.wait_for(peers.arrived("answerer", CONTROL, 20), 5) == sent
        answers = wire.packets(peers.answerer)
        resent = [
            c for p in wire.packets(peers.offerer) for c in p if getattr(c, "user_data", 0) == lost
        ]
    assert len(wire.lost) == 1 and len(resent) == 1  # fast retransmit, not T3 (1 s or more)
    # the gap was reported by one SACK a packet until it was filled, and the fill at once
    gap_sacks = [c for p in answers for c in p if isinstance(c, SackChunk) and c.gaps]
    assert len(gap_sacks) >= 3


async def test_a_lost_unreliable_packet_is_skipped_with_forward_tsn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire = Wire(monkeypatch)
    async with connected_peers() as peers:
        sent = messages(20, "m")
        lost = sent[5].encode()
        wire.lose = lambda packet: any(
            isinstance(c, DataChunk) and c.user_data == lost for c in packet
        )
        for message in sent:
            peers.channels["offerer"][MOTION].send(message)
            await asyncio.sleep(0.02)
        arrived = await asyncio.wait_for(peers.arrived("answerer", MOTION, 19), 5)
        peers.channels["offerer"][CONTROL].send("after")
        assert await asyncio.wait_for(peers.arrived("answerer", CONTROL, 1), 5) == ["after"]
        await asyncio.sleep(0.3)
        assert peers.offerer.sctp is not None
        assert not peers.offerer.sctp._sent_queue  # all acknowledged or abandoned, and known
        forward_tsns = count(wire.packets(peers.offerer), ForwardTsnChunk)
    assert sorted(arrived) == sorted(m for m in sent if m != sent[5])
    assert len(wire.lost) == 1  # never sent again
    assert 1 <= forward_tsns <= 2  # acknowledged at once, so not repeated


async def test_a_closed_channel_is_reset_on_both_sides() -> None:
    async with connected_peers() as peers:
        peers.channels["offerer"][CONTROL].send("before")
        await peers.arrived("answerer", CONTROL, 1)
        peers.channels["offerer"][CONTROL].close()  # an SCTP stream reset (RE-CONFIG)
        for side in ("offerer", "answerer"):
            await asyncio.wait_for(closed(peers.channels[side][CONTROL]), 5)
        peers.channels["offerer"][MOTION].send("after")
        assert await asyncio.wait_for(peers.arrived("answerer", MOTION, 1), 5) == ["after"]


async def closed(channel: RTCDataChannel) -> None:
    while channel.readyState != "closed":
        await asyncio.sleep(0.01)


async def test_the_call_builds_the_lean_transport_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On by default; $CARTOONCODEC_LEAN_SCTP=0 turns it off (anything else leaves it on)."""
    import aiortc.rtcpeerconnection

    from client.connection import CallConnection

    built = []
    for value, expected in (
        (None, LeanSctpTransport),
        ("0", RTCSctpTransport),
        (" 0 ", RTCSctpTransport),
        ("1", LeanSctpTransport),
    ):
        if value is None:
            monkeypatch.delenv(LEAN_SCTP_ENV, raising=False)
        else:
            monkeypatch.setenv(LEAN_SCTP_ENV, value)
        assert lean_sctp_requested() is (expected is LeanSctpTransport)
        connection = CallConnection("http://127.0.0.1:9")
        built.append(aiortc.rtcpeerconnection.RTCSctpTransport)
        await connection.pc.close()
    assert built == [LeanSctpTransport, RTCSctpTransport, RTCSctpTransport, LeanSctpTransport]
    use_lean_sctp(False)
