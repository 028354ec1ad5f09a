from __future__ import annotations

import argparse

import pytest
from aiortc.rtcicetransport import connection_kwargs

from pipeline.iceservers import ice_configuration, ice_server, ice_server_option


def test_stun_url_is_passed_as_it_is() -> None:
    server = ice_server("stun:stun.example.org:19302")
    assert (server.urls, server.username, server.credential) == (
        "stun:stun.example.org:19302",
        None,
        None,
    )


def test_turn_credentials_leave_the_url_percent_decoded() -> None:
    server = ice_server("turn:al%40home:p%3Ass%2Fw@turn.example.org:3478?transport=tcp")
    assert (server.urls, server.username, server.credential) == (
        "turn:turn.example.org:3478?transport=tcp",
        "al@home",
        "p:ss/w",
    )


def test_one_stun_and_one_turn_server_reach_aiortcs_ice_connection() -> None:
    configuration = ice_configuration(["stun:stun.example.org", "turns:u:pw@turn.example.org"])
    assert configuration.iceServers is not None
    assert [s.urls for s in configuration.iceServers] == [
        "stun:stun.example.org",
        "turns:turn.example.org",
    ]
    assert connection_kwargs(configuration.iceServers) == {
        "stun_server": ("stun.example.org", 3478),
        "turn_server": ("turn.example.org", 5349),
        "turn_ssl": True,
        "turn_transport": "tcp",
        "turn_username": "u",
        "turn_password": "pw",
    }
    assert ice_configuration([]).iceServers == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "is not stun:HOST"),
        ("stun.example.org", "is not stun:HOST"),
        ("http://example.org", "is not stun:HOST"),
        ("turn:u:secret@[::1]:3478", "is not stun:HOST"),
        ("stuns:example.org", "scheme 'stuns' is not stun, turn or turns"),
        ("stun:example.org:0", "port 0 not in 1..65535"),
        ("stun:example.org:70000", "port 70000 not in 1..65535"),
        ("stun:u:secret@example.org", "a STUN server takes no credentials"),
        ("stun:example.org?transport=udp", "a STUN server takes no transport"),
        ("turn:example.org:3478", "a TURN server needs USER:PASSWORD@ before the host"),
        ("turn::secret@example.org", "a TURN server needs USER:PASSWORD@"),
        ("turn:u:secret@example.org?transport=tls", "transport 'tls' not in udp, tcp"),
        ("turns:u:secret@example.org?transport=udp", "transport 'udp' not in tcp"),
    ],
)
def test_malformed_urls_are_refused_saying_why_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        ice_server(url)
    assert "secret" not in str(refused.value)
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        ice_server_option(url)


def test_two_servers_of_a_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="2 STUN servers given: aiortc uses one, give one"):
        ice_configuration(["stun:a.example.org", "stun:b.example.org"])
    with pytest.raises(ValueError, match="2 TURN servers given"):
        ice_configuration(["turn:u:p@a.example.org", "turns:u:p@b.example.org"])
