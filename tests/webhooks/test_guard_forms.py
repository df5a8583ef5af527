"""The SSRF guard's one rule (``guard.allowed``) over address forms (security review, finding 2).

Every form an internal IPv4 address can hide in is refused, ordinary public
addresses pass, and ``allowed_networks`` lets chosen networks through. The same
function decides at registration (every resolved address, answered 422) and on
every socket at delivery (result ``blocked``), both exercised below.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.harness.seed import partners
from ticketing.webhooks.guard import UnsafeUrl, allowed, check_url

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]
PRIVATE_LINK = [ipaddress.ip_network("10.20.0.0/16")]

FORMS = [
    # (address, allowed_networks, allowed?)
    ("8.8.8.8", [], True),
    ("1.1.1.1", [], True),
    ("2606:4700:4700::1111", [], True),
    ("2a00:1450:4001:82b::200e", [], True),
    ("::ffff:8.8.8.8", [], True),  # IPv4-mapped public
    ("64:ff9b::808:808", [], True),  # NAT64 to a public address
    ("2002:808:808::1", [], True),  # 6to4 of a public address
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", [], True),  # Teredo, client 8.8.8.8
    ("127.0.0.1", [], False),
    ("10.0.0.1", [], False),
    ("169.254.169.254", [], False),
    ("100.64.0.1", [], False),
    ("192.0.0.8", [], False),  # IETF protocol assignments 192.0.0.0/24
    ("192.0.0.170", [], False),
    ("192.0.2.1", [], False),
    ("192.88.99.1", [], False),
    ("198.18.0.1", [], False),
    ("224.0.0.1", [], False),
    ("255.255.255.255", [], False),
    ("0.0.0.0", [], False),
    ("::1", [], False),
    ("::", [], False),
    ("::ffff:127.0.0.1", [], False),  # IPv4-mapped
    ("::ffff:a9fe:a9fe", [], False),
    ("64:ff9b::a9fe:a9fe", [], False),  # NAT64 of the metadata address
    ("64:ff9b::a00:1", [], False),  # NAT64 of 10.0.0.1
    ("64:ff9b:1::a00:1", [], False),  # local-use NAT64 64:ff9b:1::/48
    ("64:ff9b:1::808:808", [], False),
    ("::7f00:1", [], False),  # IPv4-compatible 127.0.0.1
    ("::808:808", [], False),  # IPv4-compatible (deprecated) even of a public address
    ("::ffff:0:7f00:1", [], False),  # IPv4-translated 127.0.0.1
    ("2002:a9fe:a9fe::1", [], False),  # 6to4 of 169.254.169.254
    ("2002:7f00:1::1", [], False),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", [], False),  # Teredo, client 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", [], False),  # Teredo, client 10.0.0.1
    ("2001:0:c0a8:101:8000:63bf:f7f7:f7f7", [], False),  # Teredo, server 192.168.1.1
    ("fec0::1", [], False),  # site-local
    ("fc00::1", [], False),
    ("fd12:3456::1", [], False),
    ("fe80::1", [], False),
    ("ff02::1", [], False),
    ("2001:db8::1", [], False),
    ("3fff::1", [], False),
    ("100::1", [], False),
    ("5f00::1", [], False),
    ("2001:2::1", [], False),
    # Explicitly allowed networks.
    ("127.0.0.1", LOOPBACK, True),
    ("::ffff:127.0.0.1", LOOPBACK, True),
    ("127.0.0.2", LOOPBACK, False),
    ("10.20.3.4", PRIVATE_LINK, True),
    ("10.21.3.4", PRIVATE_LINK, False),
    ("64:ff9b::a14:304", PRIVATE_LINK, True),  # NAT64 of 10.20.3.4
    ("::a14:304", PRIVATE_LINK, False),  # IPv4-compatible: never
    ("fd00::1", [ipaddress.ip_network("fd00::/64")], True),
    ("fd00:0:0:1::1", [ipaddress.ip_network("fd00::/64")], False),
]


@pytest.mark.parametrize(("address", "networks", "expected"), FORMS)
def test_allowed(address, networks, expected):
    assert allowed(ipaddress.ip_address(address), networks) is expected


@pytest.mark.parametrize(
    ("address", "expected"), [(a, e) for a, n, e in FORMS if not n and ":" in a]
)
def test_registration_of_an_ipv6_literal(address, expected):
    url = f"https://[{address}]/hook"
    if expected:
        assert check_url(url, ()) == url
    else:
        with pytest.raises(UnsafeUrl, match="non-public"):
            check_url(url, ())


@pytest.mark.parametrize(
    "host", ["[64:ff9b::a9fe:a9fe]", "[::7f00:1]", "[2002:a9fe:a9fe::1]", "[fec0::1]", "192.0.0.8"]
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_api_refuses_internal_forms(make_app, host):
    app = make_app(allowed_networks=[])
    keys = partners(app)
    response = app.test_client().post(
        "/api/v1/webhooks", json={"url": f"https://{host}/hook"}, headers={"X-API-Key": keys.a}
    )
    assert response.status_code == 422 and response.json["error"]["code"] == "unsafe_url"


def test_the_socket_check_uses_the_same_rule():
    """At delivery the peer of the socket is judged by ``allowed``: a connection to
    loopback through IPv4-mapped IPv6 (a dual-stack socket's peer) is refused
    without allowed_networks."""
    import socket

    from ticketing.webhooks.guard import BlockedAddress, guarded_session

    server = socket.socket(socket.AF_INET6)
    try:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind(("::", 0))
    except OSError:
        pytest.skip("no dual-stack IPv6 on this machine")
    server.listen(1)
    port = server.getsockname()[1]
    try:
        with pytest.raises(Exception) as raised:
            guarded_session(()).post(f"http://[::ffff:127.0.0.1]:{port}/", timeout=2)
        chain, current = [], raised.value
        while current is not None and len(chain) < 10:
            chain.append(current)
            current = current.__cause__ or current.__context__ or getattr(current, "reason", None)
        assert any(isinstance(e, BlockedAddress) for e in chain) or "not a public" in str(
            raised.value
        )
    finally:
        server.close()
