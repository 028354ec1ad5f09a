"""The client's link to the server: one peer connection, its three data channels, the clock.

``CallConnection.open`` offers, joins the room over HTTP (the answer comes back in the
response), waits for the channels to open and estimates the offset to the server's call clock
from ``ping``/``pong`` round trips on ``stats``; ``send`` puts a message on a channel and
counts its bytes. What travels on the channels is the caller's: the connection only moves it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from pipeline import protocol
from pipeline.iceservers import ice_configuration
from pipeline.opus import shorten_audio_jitter
from pipeline.sctp import lean_sctp_requested, use_lean_sctp

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0
CLOCK_PINGS = 5

MessageHandler = Callable[[str | bytes], None]


class CallError(RuntimeError):
    """The call could not be set up (refused by the server, no connection) or broke off."""


class ServerClock:
    """The server's call clock seen from here: offset estimated from the fastest ping."""

    def __init__(self) -> None:
        self.offset_ms = 0.0
        self.best_rtt_ms = float("inf")
        self.synced = asyncio.Event()

    @staticmethod
    def local_ms() -> float:
        return time.monotonic() * 1000

    def now_ms(self) -> float:
        return self.local_ms() + self.offset_ms

    def on_pong(self, sent_local_ms: float, server_ms: float) -> None:
        now = self.local_ms()
        rtt = now - sent_local_ms
        if rtt < self.best_rtt_ms:
            self.best_rtt_ms = rtt
            self.offset_ms = server_ms + rtt / 2 - now
        self.synced.set()


@dataclass
class WireTotals:
    """What a call put on the wire, as DTLS records (each record one UDP datagram)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    packets_received: int = 0


class CallConnection:
    """``server``: the signalling server's URL; ``ice_servers``: STUN/TURN URLs."""

    def __init__(self, server: str, ice_servers: tuple[str, ...] = ()) -> None:
        self.server = server
        use_lean_sctp(lean_sctp_requested())
        self.pc = RTCPeerConnection(ice_configuration(ice_servers))
        self.channels: dict[str, RTCDataChannel] = {}
        self.clock = ServerClock()

    async def open(
        self,
        room: str,
        token: str,
        handlers: dict[str, MessageHandler],
        on_track: Callable[[MediaStreamTrack], None],
        render_locally: bool = False,
        audio: MediaStreamTrack | None = None,
    ) -> None:
        """Take the seat of ``token`` in ``room``: open the channels (each message goes to
        ``handlers[label]``, whose ``stats`` handler passes ``pong`` messages to
        :meth:`on_pong`), ask for the rendered video (each track goes to ``on_track``) unless
        ``render_locally`` (then the server relays the other's motion instead), join, and sync
        the clock. Sound goes both ways on one audio transceiver: ``audio`` is this
        participant's track, or None to only receive (muted)."""
        self.channels = {
            protocol.MOTION: self.pc.createDataChannel(
                protocol.MOTION, ordered=False, maxRetransmits=0
            ),
            protocol.CONTROL: self.pc.createDataChannel(protocol.CONTROL),
            protocol.STATS: self.pc.createDataChannel(protocol.STATS),
        }
        for label, channel in self.channels.items():
            channel.on("message", handlers[label])
        if not render_locally:
            self.pc.addTransceiver("video", direction="recvonly")
        sound = self.pc.addTransceiver(
            audio or "audio", direction="recvonly" if audio is None else "sendrecv"
        )
        shorten_audio_jitter(sound)
        self.pc.on("track", on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        render = protocol.RENDER_MODES[1 if render_locally else 0]
        answer = await self._exchange(room, token, render, self.pc.localDescription)
        await self.pc.setRemoteDescription(answer)
        await asyncio.wait_for(self._channels_open(), CONNECT_TIMEOUT_S)
        await asyncio.wait_for(self._sync_clock(), CONNECT_TIMEOUT_S)

    async def _exchange(
        self, room: str, token: str, render: str, offer: RTCSessionDescription
    ) -> RTCSessionDescription:
        url = f"{self.server.rstrip('/')}/rooms/{room}/offer"
        body = {"token": token, "sdp": offer.sdp, "type": offer.type, "render": render}
        async with httpx.AsyncClient(timeout=CONNECT_TIMEOUT_S) as http:
            try:
                response = await http.post(url, json=body)
            except httpx.HTTPError as exc:
                raise CallError(f"cannot reach the server at {self.server}: {exc}") from exc
        if response.status_code != 200:
            detail = response.json().get("detail", response.text) if response.content else ""
            raise CallError(f"server refused to join ({response.status_code}): {detail}")
        answer = response.json()
        return RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])

    async def _channels_open(self) -> None:
        while any(ch.readyState != "open" for ch in self.channels.values()):
            await asyncio.sleep(0.02)

    async def _sync_clock(self) -> None:
        for _ in range(CLOCK_PINGS):
            self.ping()
            await asyncio.sleep(0.02)
        await self.clock.synced.wait()

    def ping(self) -> None:
        """Ask the server for its clock; the answer reaches :meth:`on_pong`."""
        self.send(protocol.STATS, protocol.encode_message("ping", t=self.clock.local_ms()))

    def on_pong(self, message: dict[str, Any]) -> None:
        """A ``pong`` message (``pipeline.protocol``): the clock learns the server's time."""
        self.clock.on_pong(message["t"], message["server_ms"])

    def stats_sender(self, message: str) -> None:
        """Put ``message`` on ``stats`` (when open): for senders that take a plain callable."""
        self.send(protocol.STATS, message)

    def is_open(self, label: str) -> bool:
        channel = self.channels.get(label)
        return channel is not None and channel.readyState == "open"

    def send(self, label: str, message: str | bytes) -> bool:
        """Put ``message`` on channel ``label`` if it is open; False when it is not."""
        if not self.is_open(label):
            return False
        self.channels[label].send(message)
        return True

    def transport_totals(self) -> WireTotals:
        """Bytes and packets both ways on the DTLS transport: every data channel, the video,
        RTCP, and their SCTP/DTLS framing (not the UDP/IP headers). Read from the transports
        themselves: aiortc's ``getStats`` reports only transports that carry RTP, so a call
        without video (rendering locally) would read 0."""
        transports = {id(t): t for t in self.dtls_transports()}
        totals = WireTotals()
        for transport in transports.values():
            for entry in transport._get_stats().values():
                totals.bytes_sent += entry.bytesSent
                totals.bytes_received += entry.bytesReceived
                totals.packets_sent += entry.packetsSent
                totals.packets_received += entry.packetsReceived
        return totals

    def dtls_transports(self) -> list[Any]:
        """The DTLS transports of this connection (one, as aiortc bundles everything)."""
        found = [t.sender.transport for t in self.pc.getTransceivers()]
        if self.pc.sctp is not None:
            found.append(self.pc.sctp.transport)
        return [t for t in found if t is not None]

    async def close(self) -> None:
        await self.pc.close()
