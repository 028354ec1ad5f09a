"""Where a call's bytes on the wire go: a tap on aiortc's SCTP and SRTP sends, for `bench call`.

aiortc sends each SCTP chunk in a packet of its own (it does not bundle chunks) and each packet
as one DTLS record, one UDP datagram. While a ``WireTap`` is open it wraps two private methods
of aiortc, ``RTCSctpTransport._send_chunk`` and ``RTCDtlsTransport._send_rtp`` (restored on
close; nothing outside a benchmark patches them), and counts per DTLS transport what each
packet carried. ``breakdown`` then splits the bytes the transport sent (its own counter, as
``client.connection.WireTotals``) into:

- ``<channel> payload``: the data-channel messages themselves (motion, control, stats);
- ``SCTP DATA framing``: the 12-byte SCTP header and 16-byte DATA chunk header (and padding)
  of each message;
- ``SCTP SACK``: selective acknowledgements, one for every packet of DATA received (aiortc
  acknowledges at once, never delayed);
- ``SCTP other``: FORWARD-TSN (abandoned unreliable messages), heartbeats, stream resets;
- ``RTP/RTCP``: video and its control reports, with their SRTP authentication tags;
- ``DTLS framing``: the rest, the record header and the cipher's nonce and tag on each packet.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

SCTP_COMMON_HEADER = 12
SRTP_TAG = 10  # AES_CM_128_HMAC_SHA1_80 (RTP); RTCP adds a 4-byte index
SRTCP_EXTRA = 14


class WireTap:
    def __init__(self) -> None:
        # per DTLS transport (kept alive here): what its packets carried, in bytes
        self._counts: dict[int, tuple[Any, Counter[str]]] = {}

    def counts(self, dtls_transport: Any) -> Counter[str]:
        if id(dtls_transport) not in self._counts:
            self._counts[id(dtls_transport)] = (dtls_transport, Counter())
        return self._counts[id(dtls_transport)][1]

    @contextlib.contextmanager
    def tapping(self) -> Iterator[WireTap]:
        from aiortc.rtcdtlstransport import RTCDtlsTransport
        from aiortc.rtcsctptransport import DataChunk, RTCSctpTransport, SackChunk
        from aiortc.rtp import is_rtcp

        send_chunk, send_rtp = RTCSctpTransport._send_chunk, RTCDtlsTransport._send_rtp
        tap = self

        async def counted_chunk(sctp: Any, chunk: Any) -> None:
            counts = tap.counts(sctp.transport)
            size = SCTP_COMMON_HEADER + len(bytes(chunk))
            if isinstance(chunk, DataChunk):
                counts[f"stream {chunk.stream_id} payload"] += len(chunk.user_data)
                counts["SCTP DATA framing"] += size - len(chunk.user_data)
            elif isinstance(chunk, SackChunk):
                counts["SCTP SACK"] += size
            else:
                counts["SCTP other"] += size
            await send_chunk(sctp, chunk)

        async def counted_rtp(dtls: Any, data: bytes) -> None:
            tag = SRTCP_EXTRA if is_rtcp(data) else SRTP_TAG
            tap.counts(dtls)["RTP/RTCP"] += len(data) + tag
            await send_rtp(dtls, data)

        RTCSctpTransport._send_chunk = counted_chunk  # type: ignore[method-assign, assignment]
        RTCDtlsTransport._send_rtp = counted_rtp  # type: ignore[method-assign, assignment]
        try:
            yield self
        finally:
            RTCSctpTransport._send_chunk = send_chunk  # type: ignore[method-assign]
            RTCDtlsTransport._send_rtp = send_rtp  # type: ignore[method-assign]

    def breakdown(
        self, dtls_transport: Any, streams: dict[int, str], wire_bytes: int
    ) -> dict[str, int]:
        """Bytes ``dtls_transport`` sent, by item (see the module docstring); ``streams``:
        SCTP stream id -> channel label; ``wire_bytes``: what the transport counted."""
        counts = self.counts(dtls_transport)
        items: dict[str, int] = {}
        for key, value in sorted(counts.items()):
            if key.startswith("stream "):
                stream = int(key.split()[1])
                key = f"{streams.get(stream, f'stream {stream}')} payload"
            items[key] = items.get(key, 0) + value
        items["DTLS framing"] = wire_bytes - sum(items.values())
        return items
