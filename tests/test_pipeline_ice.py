from __future__ import annotations

import aioice.ice

from pipeline.ice import use_loopback_ice


def test_loopback_ice_offers_only_127_0_0_1() -> None:
    try:
        use_loopback_ice()
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == []
    finally:
        use_loopback_ice(False)
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
