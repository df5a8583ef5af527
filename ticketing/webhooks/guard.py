"""The SSRF guard: partner webhook URLs must not reach our own network.

A partner chooses the URL the ticket service posts to, so without a guard a
partner could make it post to ``http://127.0.0.1:9093`` (our Alertmanager),
``http://169.254.169.254/`` (a cloud metadata service) or anything on the
private network.  Only globally routable unicast addresses are allowed
(:func:`allowed`), unless they are in ``webhooks.allowed_networks``: no
loopback, private, link-local, CGNAT, IETF protocol assignment, documentation,
benchmarking, multicast, reserved or unspecified address, and no IPv6 address
outside global unicast (``2000::/3``).  An IPv6 address that carries an IPv4
address (IPv4-mapped, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo
``2001::/32``) is judged by that IPv4 address, since that is where its packets
end up; the deprecated forms (IPv4-compatible ``::/96``, IPv4-translated
``::ffff:0:0:0/96``), local-use NAT64 ``64:ff9b:1::/48`` and site-local
``fec0::/10`` are refused outright.  The tables are IANA's special-purpose
address registries, written out rather than taken from ``ipaddress``, whose
idea of "global" depends on the Python version.

The check runs twice:

- when an endpoint is registered or its URL changed (:func:`check_url`: every
  address the host resolves to must be allowed), answered with a 422;
- at delivery, on the socket itself: :data:`session` connects through
  connection classes that look at the peer address of each new connection
  before anything is sent, so a name that resolves elsewhere later (DNS
  rebinding) is caught too.  Proxies from the environment are not used and
  redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(requests.exceptions.ConnectionError):
    """The URL resolves to an address that is not allowed."""


class UnsafeUrl(ValueError):
    """A URL refused at registration; the message says why."""


def _networks(*texts: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


#: IPv4 ranges that are not globally routable unicast (IANA IPv4 special-purpose
#: registry, multicast and the limited broadcast address).
IPV4_REFUSED = _networks(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared address space (CGNAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (cloud metadata)
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments (192.0.0.8, DS-Lite 192.0.0.0/29, ...)
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",  # documentation
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255
)
#: IPv6 global unicast space.
IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
#: Ranges inside it that are not globally routable (IANA IPv6 special-purpose registry).
IPV6_REFUSED = _networks(
    "2001::/23",  # IETF protocol assignments (Teredo 2001::/32 is judged by its IPv4 parts)
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation
)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix (RFC 6052)
TEREDO = ipaddress.IPv6Network("2001::/32")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, NAT64 (well-known
    prefix), 6to4, Teredo (server and client, the client's bits inverted); () for others."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address in NAT64:
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address in SIX_TO_FOUR and address.sixtofour is not None:
        return (address.sixtofour,)
    if address in TEREDO and address.teredo is not None:
        return address.teredo
    return ()


def allowed(address: Address, networks: Iterable[Network]) -> bool:
    """Whether the service may connect to ``address``: in ``networks``
    (``webhooks.allowed_networks``), or globally routable unicast; an IPv6
    address carrying an IPv4 address only when that IPv4 address is allowed.

    The one check of registration (every resolved address) and of delivery (every
    socket's peer)."""
    networks = tuple(networks)
    if any(address in network for network in networks):
        return True
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not any(address in net for net in IPV4_REFUSED)
    carried = embedded_ipv4(address)
    if carried:
        return all(allowed(ipv4, networks) for ipv4 in carried)
    return (
        address in IPV6_GLOBAL_UNICAST
        and address.is_global
        and not any(address in net for net in IPV6_REFUSED)
    )


def resolve(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # An IPv4 or IPv6 socket address starts with the address as text ("fe80::1%eth0").
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_url(url: str, networks: Iterable[Network], require_https: bool = True) -> str:
    """The URL, normalised; UnsafeUrl when it may not be used as a webhook endpoint."""
    networks = tuple(networks)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL ({exc})") from None
    schemes = ("https",) if require_https else ("https", "http")
    if parts.scheme not in schemes:
        raise UnsafeUrl(f"must be an {' or '.join(schemes)} URL")
    if not parts.hostname:
        raise UnsafeUrl("must name a host")
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry a user name or password")
    if parts.fragment:
        raise UnsafeUrl("must not have a #fragment")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(parts.hostname, port)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise UnsafeUrl(f"the host {parts.hostname} cannot be resolved ({exc})") from None
    refused = sorted({str(a) for a in addresses if not allowed(a, networks)})
    if refused:
        raise UnsafeUrl(
            f"the host {parts.hostname} resolves to a loopback, private, "
            f"link-local or otherwise non-public address ({', '.join(refused)})"
        )
    return url


class _Guarded(HTTPConnection):
    """Mixed into urllib3's connections (first): check the peer of every new socket."""

    allowed_networks: tuple[Network, ...] = ()

    def _new_conn(self) -> socket.socket:  # urllib3 calls it in connect(), before TLS and sending
        sock = super()._new_conn()
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
        if not allowed(peer, self.allowed_networks):
            sock.close()
            raise BlockedAddress(f"{self.host} resolves to {peer}, which is not a public address")
        return sock


def guarded_session(networks: Iterable[Network]) -> requests.Session:
    """A requests Session whose connections refuse non-public peers (but ``networks``)."""
    networks = tuple(networks)
    http_conn = type(
        "GuardedHTTPConnection", (_Guarded, HTTPConnection), {"allowed_networks": networks}
    )
    https_conn = type(
        "GuardedHTTPSConnection", (_Guarded, HTTPSConnection), {"allowed_networks": networks}
    )
    http_pool = type(
        "GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}
    )
    https_pool = type(
        "GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
    )

    adapter = HTTPAdapter(max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment: they would hide the peer
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
