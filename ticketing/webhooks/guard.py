"""The SSRF guard: partner webhook URLs must not reach our own network.

A partner chooses the URL the ticket service posts to, so without a guard a
partner could make it post to ``http://127.0.0.1:9093`` (our Alertmanager),
``http://169.254.169.254/`` (a cloud metadata service) or anything on the
private network.  Only addresses that are globally routable are allowed
(``ipaddress``' ``is_global``: no loopback, private, link-local, CGNAT,
multicast, reserved or unspecified address), unless they are in
``webhooks.allowed_networks``.

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


def allowed(address: Address, networks: Iterable[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in networks):
        return True
    return address.is_global and not address.is_multicast


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
