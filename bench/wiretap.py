"""Where a call's bytes on the wire go: a tap on aiortc's SCTP and SRTP sends, for `bench call`.

Each SCTP packet leaves as one DTLS record, one UDP datagram; our transport
(pipeline/sctp.py) puts a waiting SACK in the packet of the next DATA chunk, so a packet can
carry several chunks. While a ``WireTap`` is open it wraps two private methods of aiortc,
``RTCDtlsTransport._send_data`` (SCTP packets) and ``RTCDtlsTransport._send_rtp`` (restored on
close; nothing outside a benchmark patches them), and counts per DTLS transport what each
packet carried, chunk by chunk. ``breakdown`` then splits the bytes the transport sent (its
own counter, as ``client.connection.WireTotals``) into:

- ``<channel> payload``: the data-channel messages themselves (motion, control, stats);
- ``SCTP DATA framing``: the 16-byte DATA chunk header (and padding) of each message, and the
  12-byte SCTP common header of each packet that carries DATA;
- ``SCTP SACK``: selective acknowledgements (the SACK chunk; with the common header when the
  packet carries no DATA);
- ``SCTP other``: FORWARD-TSN (abandoned unreliable messages), heartbeats, stream resets;
- ``RTP/RTCP``: sound or video and its control reports, with their SRTP authentication tags;
- ``DTLS framing``: the rest, the record header and the cipher's nonce and tag on each packet
  (one record for a SACK and the DATA it rides with).
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

    def count_sctp(self, dtls_transport: Any, packet: bytes) -> None:
        """Count the chunks of one SCTP ``packet`` that ``dtls_transport`` sends."""
        from aiortc.rtcsctptransport import DataChunk, SackChunk, parse_packet

        counts = self.counts(dtls_transport)
        chunks = parse_packet(packet)[3]
        header = "SCTP DATA framing" if any(isinstance(c, DataChunk) for c in chunks) else None
        for chunk in chunks:
            size = len(bytes(chunk))
            if isinstance(chunk, DataChunk):
                counts[f"stream {chunk.stream_id} payload"] += len(chunk.user_data)
                counts["SCTP DATA framing"] += size - len(chunk.user_data)
            else:
                item = "SCTP SACK" if isinstance(chunk, SackChunk) else "SCTP other"
                counts[item] += size
                header = header or item
        counts[header or "SCTP other"] += SCTP_COMMON_HEADER

    @contextlib.contextmanager
    def tapping(self) -> Iterator[WireTap]:
        from aiortc.rtcdtlstransport import RTCDtlsTransport
        from aiortc.rtp import is_rtcp

        send_data, send_rtp = RTCDtlsTransport._send_data, RTCDtlsTransport._send_rtp
        tap = self

        async def counted_data(dtls: Any, data: bytes) -> None:
            tap.count_sctp(dtls, data)
            await send_data(dtls, data)

        async def counted_rtp(dtls: Any, data: bytes) -> None:
            tag = SRTCP_EXTRA if is_rtcp(data) else SRTP_TAG
            tap.counts(dtls)["RTP/RTCP"] += len(data) + tag
            await send_rtp(dtls, data)

        RTCDtlsTransport._send_data = counted_data  # type: ignore[method-assign, assignment]
        RTCDtlsTransport._send_rtp = counted_rtp  # type: ignore[method-assign, assignment]
        try:
            yield self
        finally:
            RTCDtlsTransport._send_data = send_data  # type: ignore[method-assign]
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
