"""Restrict ICE to the loopback interface.

aioice gathers host candidates from every interface except 127.0.0.1, so on a machine whose
only interface is loopback (or in tests that must stay on loopback) no candidate pair exists.
This swaps aioice's address lookup for one that returns 127.0.0.1 only.
"""

from __future__ import annotations

import aioice.ice

_ORIGINAL = aioice.ice.get_host_addresses


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def use_loopback_ice(enabled: bool = True) -> None:
    """Gather only 127.0.0.1 candidates in this process (or restore normal gathering)."""
    aioice.ice.get_host_addresses = _loopback_addresses if enabled else _ORIGINAL
