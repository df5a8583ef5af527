"""The client's IP address, believing forwarding headers only from trusted proxies.

``X-Forwarded-For`` is a list each proxy appends the address it received the
request from to. Anyone can send the header, so only the entries added by our
own proxies are believable. The rule (the same walk as werkzeug's ProxyFix,
but by address rather than by a fixed hop count):

1. Start with ``remote_addr``, the peer of the TCP connection.
2. While the current address is a trusted proxy, step to the next entry of
   ``X-Forwarded-For`` from the right (the address that proxy saw).
3. The first address that is not a trusted proxy is the client. When every
   entry is trusted, the left-most one is. An entry that is not an IP address
   ends the walk at the last trusted proxy (a proxy of ours never writes one).

With no trusted proxies configured (the default) the header is ignored.

    >>> from ipaddress import ip_network
    >>> client_ip("10.0.0.5", "203.0.113.9, 198.51.100.7", [ip_network("10.0.0.0/8")])
    '198.51.100.7'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "192.0.2.1:51234"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_ip(
    remote_addr: str | None,
    forwarded_for: str | None,
    trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str | None:
    """The client address of a request (see the module documentation)."""
    trusted = tuple(trusted)
    current = _parse(remote_addr or "")
    if current is None:
        return remote_addr or None
    if not trusted or not forwarded_for:
        return str(current)

    def is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == net.version and address in net for net in trusted)

    hops = [h for h in forwarded_for.split(",") if h.strip()]
    while hops and is_trusted(current):
        candidate = _parse(hops.pop())
        if candidate is None:
            break
        current = candidate
    return str(current)
