"""The client's connection, without a server: ICE configuration, clock, refusals."""

from __future__ import annotations

import pytest

from client import connection
from client.connection import CallConnection, CallError, ServerClock
from pipeline import protocol
from tests.tinycall import recorded_configurations


def test_the_configs_ice_servers_reach_the_peer_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    configurations = recorded_configurations(monkeypatch, connection)
    CallConnection("http://127.0.0.1:9", ("stun:stun.example.org:19302",))
    assert configurations[0].iceServers is not None
    assert [s.urls for s in configurations[0].iceServers] == ["stun:stun.example.org:19302"]


def test_the_clock_keeps_the_offset_of_the_fastest_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ServerClock()
    now = [1000.0]
    monkeypatch.setattr(ServerClock, "local_ms", staticmethod(lambda: now[0]))
    now[0] = 1040.0  # a 40 ms round trip: the server's 5000 was 20 ms ago
    clock.on_pong(1000.0, 5000.0)
    assert clock.offset_ms == 5020.0 - 1040.0 and clock.synced.is_set()
    now[0] = 1100.0  # a slower one (60 ms) changes nothing
    clock.on_pong(1040.0, 9999.0)
    assert clock.offset_ms == 5020.0 - 1040.0 and clock.best_rtt_ms == 40.0
    now[0] = 1110.0  # a faster one (10 ms) replaces it
    clock.on_pong(1100.0, 6000.0)
    assert clock.offset_ms == 6005.0 - 1110.0 and clock.now_ms() == 6005.0


async def test_a_server_nobody_listens_at_is_said() -> None:
    link = CallConnection("http://127.0.0.1:9")
    with pytest.raises(CallError, match="cannot reach the server at http://127.0.0.1:9"):
        await link.open("r", "t", dict.fromkeys(protocol.CHANNELS, ignore), lambda track: None)
    await link.close()


def ignore(data: str | bytes) -> None:
    """A channel handler for a test where no message arrives."""
