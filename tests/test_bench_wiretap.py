"""The wire tap splits a transport's bytes into payload, framing and acknowledgements."""

from __future__ import annotations

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import RTCSctpTransport

from bench.wiretap import WireTap


def test_breakdown_names_channels_and_leaves_the_rest_to_dtls() -> None:
    tap = WireTap()
    transport = object()
    counts = tap.counts(transport)
    counts["stream 1 payload"] += 300
    counts["stream 3 payload"] += 40
    counts["stream 7 payload"] += 5
    counts["SCTP DATA framing"] += 280
    counts["SCTP SACK"] += 280
    items = tap.breakdown(transport, {1: "motion", 3: "stats"}, wire_bytes=1500)
    assert items == {
        "motion payload": 300,
        "stats payload": 40,
        "stream 7 payload": 5,
        "SCTP DATA framing": 280,
        "SCTP SACK": 280,
        "DTLS framing": 1500 - 905,
    }
    assert tap.counts(object()) == {}  # another transport counts apart


def test_tapping_restores_aiortc() -> None:
    send_chunk, send_rtp = RTCSctpTransport._send_chunk, RTCDtlsTransport._send_rtp
    with WireTap().tapping():
        assert RTCSctpTransport._send_chunk is not send_chunk
        assert RTCDtlsTransport._send_rtp is not send_rtp
    assert RTCSctpTransport._send_chunk is send_chunk
    assert RTCDtlsTransport._send_rtp is send_rtp
