"""STUN/TURN servers for the peer connections, from ``--ice-server`` URLs.

``ice_server`` turns one URL into aiortc's ``RTCIceServer``::

    stun:HOST[:PORT]
    turn:USER:PASSWORD@HOST[:PORT][?transport=udp|tcp]
    turns:USER:PASSWORD@HOST[:PORT][?transport=tcp]

The credentials are taken out of the URL (percent-encode ``:``, ``@``, ``/``, ``?`` and ``%``
in them) and passed as aiortc's username and credential. aiortc uses one STUN and one TURN
server per connection and no ``stuns:``, so ``ice_configuration`` refuses a second server of a
kind and ``stuns:`` instead of leaving them unused without a word. aiortc is imported only when
a configuration is built, so the CLI can take the option without loading it.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from aiortc import RTCConfiguration, RTCIceServer

ICE_URL_FORMS = (
    "stun:HOST[:PORT] or turn:USER:PASSWORD@HOST[:PORT][?transport=udp|tcp] "
    "(turns: for TURN over TLS)"
)
_ICE_URL = re.compile(
    r"(?P<scheme>[A-Za-z]+):"
    r"(?:(?P<user>[^:@/?]*):(?P<password>[^@/?]*)@)?"
    r"(?P<host>[^:@/?\[\]\s]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>[a-z]+))?"
)
_TRANSPORTS = {"turn": ("udp", "tcp"), "turns": ("tcp",)}


def ice_server(url: str) -> RTCIceServer:
    """One ``--ice-server`` URL -> RTCIceServer; ValueError saying what is wrong with it."""
    from aiortc import RTCIceServer

    match = _ICE_URL.fullmatch(url)
    if match is None:
        raise ValueError(f"ICE server {_redacted(url)!r} is not {ICE_URL_FORMS}")
    scheme, user, password = match["scheme"], match["user"], match["password"]
    if scheme not in ("stun", "turn", "turns"):
        raise ValueError(
            f"ICE server {_redacted(url)!r}: scheme {scheme!r} is not stun, turn or turns"
        )
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"ICE server {_redacted(url)!r}: port {match['port']} not in 1..65535")
    if scheme == "stun":
        if user is not None:
            raise ValueError(f"ICE server {_redacted(url)!r}: a STUN server takes no credentials")
        if match["transport"] is not None:
            raise ValueError(f"ICE server {_redacted(url)!r}: a STUN server takes no transport")
        return RTCIceServer(urls=url)
    if not user or not password:
        raise ValueError(
            f"ICE server {_redacted(url)!r}: a TURN server needs USER:PASSWORD@ before the host"
        )
    if match["transport"] is not None and match["transport"] not in _TRANSPORTS[scheme]:
        raise ValueError(
            f"ICE server {_redacted(url)!r}: transport {match['transport']!r} not in "
            f"{', '.join(_TRANSPORTS[scheme])}"
        )
    bare = url[: match.start("user")] + url[match.start("host") :]
    return RTCIceServer(urls=bare, username=unquote(user), credential=unquote(password))


def add_ice_server_argument(parser: argparse.ArgumentParser) -> None:
    """``--ice-server URL``, repeatable, as ``serve`` and ``call`` take it."""
    parser.add_argument(
        "--ice-server",
        type=ice_server_option,
        action="append",
        default=[],
        metavar="URL",
        help=f"STUN or TURN server for participants behind NAT, repeatable: {ICE_URL_FORMS}; "
        "percent-encode ':' '@' '/' '?' '%%' in USER and PASSWORD",
    )


def ice_server_option(url: str) -> str:
    """argparse type of ``--ice-server``: the URL when ``ice_server`` takes it."""
    try:
        ice_server(url)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return url


def ice_configuration(urls: Sequence[str]) -> RTCConfiguration:
    """The peer connections' configuration: at most one STUN and one TURN server."""
    from aiortc import RTCConfiguration

    servers = [ice_server(url) for url in urls]
    for kind in ("stun", "turn"):
        of_kind = [s for s in servers if str(s.urls).startswith(kind)]
        if len(of_kind) > 1:
            raise ValueError(
                f"{len(of_kind)} {kind.upper()} servers given: aiortc uses one, give one"
            )
    return RTCConfiguration(iceServers=servers)


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (messages end up in logs)."""
    return re.sub(r"^([A-Za-z]+:[^:@/?]*:)[^@/?]*@", r"\1***@", url)
