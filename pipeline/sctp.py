"""aiortc's SCTP transport, acknowledging as RFC 4960 asks: delayed SACKs, bundled with data.

aiortc 1.16 sends a SACK for every packet of DATA it receives, at once, in an SCTP packet and so
a DTLS record of its own (``RTCSctpTransport._handle_data`` → ``_send_sack`` →
``_send_chunk``, one chunk a packet): ~65 bytes on the wire for each message the other side
sends, more than most of our messages. ``LeanSctpTransport`` acknowledges as a receiver should
(RFC 4960 section 6.2):

- every second packet of DATA, or ``SACK_DELAY_S`` after the first one not acknowledged (aiortc
  asks for the SACK after every packet while one waits: packets without DATA don't count);
- at once when a packet leaves a gap in the TSNs received, repeats one (duplicate), or fills
  a gap the last SACK reported, so that the sender's fast retransmit and T3 timer see what
  they saw before; and on a FORWARD-TSN, which the sender repeats until acknowledged;
- a SACK that waits goes out first in the packet of the next DATA, FORWARD-TSN or RE-CONFIG
  chunk this side sends (section 6.10: control chunks before DATA), unless the two would
  exceed aiortc's ``SCTP_MAX_PACKET_LENGTH``.

Everything else (retransmission, partial reliability, stream resets, congestion control) is
aiortc's own code. aiortc builds the transport inside ``RTCPeerConnection`` from the global
``RTCSctpTransport`` of its module ``aiortc.rtcpeerconnection`` (``__createSctpTransport``),
with no option or argument to pick another, so ``use_lean_sctp`` swaps that global: every peer
connection the process builds afterwards uses ``LeanSctpTransport``. The client and server
call it before building theirs. The subclass relies on private methods of aiortc 1.16, the
minor range pinned in pyproject.toml. The call uses it unless $CARTOONCODEC_LEAN_SCTP is 0
(see ``LEAN_SCTP_ENV``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence

import aiortc.rtcpeerconnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import (
    SCTP_COMMON_HEADER_LENGTH,
    SCTP_MAX_PACKET_LENGTH,
    Chunk,
    DataChunk,
    ForwardTsnChunk,
    ReconfigChunk,
    RTCSctpTransport,
    SackChunk,
)

SACK_DELAY_S = 0.2  # RFC 4960 section 6.2: 200 ms (it must stay under 500 ms)
SACK_EVERY_PACKETS = 2
# the chunks a waiting SACK rides with (never INIT, COOKIE, ABORT or SHUTDOWN chunks)
SACK_RIDES_WITH = (DataChunk, ForwardTsnChunk, ReconfigChunk)


class LeanSctpTransport(RTCSctpTransport):
    """``RTCSctpTransport`` with delayed SACKs that ride on the next chunk sent (see above)."""

    def __init__(self, transport: RTCDtlsTransport, port: int = 5000) -> None:
        super().__init__(transport, port)
        self._sack_packets = 0  # packets of DATA received since the last SACK
        self._sack_data = False  # a DATA chunk arrived since aiortc last asked for a SACK
        self._sack_now = False  # a FORWARD-TSN arrived: acknowledge it at once
        self._sack_reported_gaps = False  # the last SACK sent had gap blocks
        self._sack_handle: asyncio.TimerHandle | None = None
        self._sack_task: asyncio.Future[None] | None = None  # held: the loop keeps weak refs
        self._sack_rider: Chunk | None = None  # the chunk the SACK being built goes out with

    async def _send_sack(self) -> None:
        """aiortc calls this after each packet received that needs acknowledging: send the
        SACK now if RFC 4960 says so, else within ``SACK_DELAY_S`` (or with a chunk sent)."""
        if self._sack_data:  # a packet of several DATA chunks counts once
            self._sack_packets += 1
            self._sack_data = False
        if (
            self._sack_packets >= SACK_EVERY_PACKETS
            or self._sack_now
            or self._sack_misordered  # a gap
            or self._sack_duplicates
            or self._sack_reported_gaps  # this packet may fill the gap
        ):
            await super()._send_sack()
        elif self._sack_handle is None:
            self._sack_handle = asyncio.get_running_loop().call_later(
                SACK_DELAY_S, self._sack_delay_expired
            )

    async def _receive_data_chunk(self, chunk: DataChunk) -> None:
        self._sack_data = True
        await super()._receive_data_chunk(chunk)

    async def _receive_forward_tsn_chunk(self, chunk: ForwardTsnChunk) -> None:
        self._sack_now = True
        await super()._receive_forward_tsn_chunk(chunk)

    async def _send_chunk(self, chunk: Chunk) -> None:
        """Send ``chunk``, after the SACK that waits in the same packet if one does. aiortc's
        ``_send_sack`` builds the SACK (and clears what it reports once sent): it comes back
        here as a ``SackChunk`` and leaves with the rider."""
        if isinstance(chunk, SackChunk):
            self._sack_sent(chunk)
            rider, self._sack_rider = self._sack_rider, None
            if rider is None:
                await super()._send_chunk(chunk)
            elif (
                SCTP_COMMON_HEADER_LENGTH + len(bytes(chunk)) + len(bytes(rider))
                > SCTP_MAX_PACKET_LENGTH
            ):
                await super()._send_chunk(chunk)
                await super()._send_chunk(rider)
            else:
                await super()._send_chunk(ChunkBundle((chunk, rider)))
        elif self._sack_needed and isinstance(chunk, SACK_RIDES_WITH):
            self._sack_rider = chunk
            await super()._send_sack()
        else:
            await super()._send_chunk(chunk)

    def _sack_sent(self, sack: SackChunk) -> None:
        """A SACK leaves: nothing waits any more."""
        self._sack_packets = 0
        self._sack_now = False
        self._sack_reported_gaps = bool(sack.gaps)
        self._cancel_sack_delay()

    def _sack_delay_expired(self) -> None:
        self._sack_handle = None
        self._sack_task = asyncio.ensure_future(self._send_delayed_sack())

    async def _send_delayed_sack(self) -> None:
        # Sent even if aiortc cleared _sack_needed since the timer started: a SACK whose send
        # was under way when a packet arrived clears it after that packet asked for one.
        if self._association_state == self.State.ESTABLISHED:
            # the DTLS transport can close before the association does (as in aiortc's abort)
            with contextlib.suppress(ConnectionError):
                await super()._send_sack()

    def _cancel_sack_delay(self) -> None:
        if self._sack_handle is not None:
            self._sack_handle.cancel()
            self._sack_handle = None

    def _set_state(self, state: RTCSctpTransport.State) -> None:
        if state == self.State.CLOSED:
            self._cancel_sack_delay()
        super()._set_state(state)


class ChunkBundle(Chunk):
    """Chunks that go out in one SCTP packet: aiortc's ``serialize_packet`` writes the one
    chunk it takes as ``bytes(chunk)``, so this stands in for them all, in order."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        super().__init__()
        self.chunks = tuple(chunks)

    def __bytes__(self) -> bytes:
        return b"".join(bytes(chunk) for chunk in self.chunks)

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.chunks))


LEAN_SCTP_ENV = "CARTOONCODEC_LEAN_SCTP"
"""Set to 0 to build the call's peer connections with aiortc's own ``RTCSctpTransport``. On by
default since 2026-11-29 11:30 UTC: 3.5–5 kbps less on the wire a direction; an early version
cost the server-rendered demo latency (p95 195–335 ms against 84–96 ms, alternating runs), not
seen again in four alternating pairs since a SACK waits only for packets that carry DATA
(README, "The call")."""


def lean_sctp_requested() -> bool:
    """Whether the call uses ``LeanSctpTransport``: yes unless $CARTOONCODEC_LEAN_SCTP is "0"."""
    return os.environ.get(LEAN_SCTP_ENV, "").strip() != "0"


def use_lean_sctp(enabled: bool = True) -> None:
    """Build this process's peer connections from now on with ``LeanSctpTransport`` (or, not
    ``enabled``, with aiortc's own ``RTCSctpTransport``)."""
    transport = LeanSctpTransport if enabled else RTCSctpTransport
    aiortc.rtcpeerconnection.RTCSctpTransport = transport  # type: ignore[misc]
