"""The wire tap splits a transport's bytes into payload, framing and acknowledgements."""

from __future__ import annotations

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import DataChunk, ForwardTsnChunk, SackChunk, serialize_packet

from bench.wiretap import WireTap
from pipeline.sctp import ChunkBundle


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


def test_a_sack_bundled_with_data_counts_as_sack_and_the_header_as_data_framing() -> None:
    tap = WireTap()
    transport = object()
    data = DataChunk()
    data.stream_id, data.user_data = 1, b"motion"  # 6 bytes, padded to 8
    sack = SackChunk()  # 16 bytes, no gap blocks
    for chunk in (ChunkBundle((sack, data)), sack, ForwardTsnChunk()):
        tap.count_sctp(transport, serialize_packet(5000, 5000, 1, chunk))
    assert tap.counts(transport) == {
        "stream 1 payload": 6,
        "SCTP DATA framing": 12 + 16 + 2,
        "SCTP SACK": 16 + (12 + 16),  # bundled, then alone with its packet's header
        "SCTP other": 12 + 8,
    }


def test_tapping_restores_aiortc() -> None:
    send_data, send_rtp = RTCDtlsTransport._send_data, RTCDtlsTransport._send_rtp
    with WireTap().tapping():
        assert RTCDtlsTransport._send_data is not send_data
        assert RTCDtlsTransport._send_rtp is not send_rtp
    assert RTCDtlsTransport._send_data is send_data
    assert RTCDtlsTransport._send_rtp is send_rtp
