"""The HTTP probe and the Redis PING, against real servers, one run at a time.

The probe speaks HTTP through the standard library and the Redis check
speaks RESP over a socket; these tests hold them to what redis-py and
requests did for the exporter: URL credentials, redirects, any status,
timeouts; Redis passwords, ACL users, database numbers, Unix sockets and TLS.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exporter.collectors.base import CollectFailed
from exporter.collectors.http_probe import HttpProbe
from exporter.collectors.redis_health import RedisHealth
from exporter.config import ConfigError, validate
from exporter.schema import ProbeTarget, RedisConfig
from tests.harness import HTTPSink, ManagedProcess, free_port, tcp_ready

SCHEDULE = {"interval": 5.0, "timeout": 1.0, "staleness": 30.0}
SECRET = "s3cret-pass"


def values(families) -> dict[str, float]:
    return {s.name: s.value for family in families for s in family.samples}


def outcome(collector) -> tuple[str | None, dict[str, float]]:
    """(error message or None, the published values)."""
    try:
        return None, values(collector.collect())
    except CollectFailed as exc:
        return exc.message, values(exc.families)


# --------------------------------------------------------------------- HTTP


def probe(url: str, **target) -> HttpProbe:
    return HttpProbe("api", ProbeTarget(url=url, **target), **SCHEDULE)


@pytest.fixture
def api():
    with HTTPSink() as sink:
        sink.responses["/healthz"] = (200, b'{"status": "ok"}')
        yield sink


@pytest.fixture
def redirector(api):
    """A server answering every GET with a redirect to the API's /healthz."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(dict(self.headers.items()))
            self.send_response(302)
            self.send_header("Location", f"{api.url}/healthz")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.seen = seen
    yield server
    server.shutdown()
    server.server_close()


def test_probe_checks_status_and_body(api):
    error, got = outcome(probe(f"{api.url}/healthz", body_regex=r'"status":\s*"ok"'))
    assert error is None
    assert got["platform_api_probe_success"] == 1
    assert got["platform_api_probe_http_status_code"] == 200
    assert got["platform_api_probe_duration_seconds"] > 0
    [request] = api.received("/healthz")
    assert request.headers["User-Agent"] == "partnerwatch-exporter"
    assert request.headers["Connection"] == "close"  # a fresh connection each time

    api.responses["/healthz"] = (200, b'{"status": "degraded"}')
    error, got = outcome(probe(f"{api.url}/healthz", body_regex=r'"status":\s*"ok"'))
    assert error == 'body does not match \'"status":\\\\s*"ok"\''
    assert got["platform_api_probe_success"] == 0
    assert got["platform_api_probe_http_status_code"] == 200

    api.responses["/healthz"] = (503, b"maintenance")
    error, got = outcome(probe(f"{api.url}/healthz"))
    assert error == "status 503, expected 200"
    assert got["platform_api_probe_http_status_code"] == 503
    error, got = outcome(probe(f"{api.url}/healthz", expected_status=503, body_regex="maint"))
    assert error is None and got["platform_api_probe_success"] == 1


def test_probe_follows_redirects_and_keeps_credentials_to_their_host(api, redirector):
    port = redirector.server_address[1]
    error, got = outcome(probe(f"http://watch:{SECRET}%21@127.0.0.1:{port}/old"))
    assert error is None
    assert got["platform_api_probe_http_status_code"] == 200
    # Basic credentials from the URL go to the host it names, not where it redirects.
    assert redirector.seen[0]["Authorization"] == "Basic d2F0Y2g6czNjcmV0LXBhc3Mh"
    [request] = api.received("/healthz")
    assert "Authorization" not in request.headers


def test_probe_without_an_answer(api):
    error, got = outcome(probe(f"http://127.0.0.1:{free_port()}/healthz"))
    assert error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert got["platform_api_probe_success"] == 0
    assert got["platform_api_probe_http_status_code"] == 0  # no response
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        error, got = outcome(
            probe(f"http://127.0.0.1:{silent.getsockname()[1]}/healthz", timeout=0.3)
        )
    assert error == "TimeoutError: timed out"
    assert got["platform_api_probe_success"] == 0


# -------------------------------------------------------------------- Redis


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory):
    """A Redis with a password, a Unix socket and a TLS port (self-signed certificate)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificate")
    workdir = tmp_path_factory.mktemp("redis-secured")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    port, tls_port = free_port(), free_port()
    sock = workdir / "redis.sock"
    proc = ManagedProcess(
        [
            shutil.which("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--requirepass",
            SECRET,
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--tls-port",
            str(tls_port),
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-auth-clients",
            "no",
        ],
        workdir,
        name="redis-secured",
    )
    proc.start(ready=tcp_ready("127.0.0.1", port))
    try:
        import redis  # the test's own client, to set up an ACL user

        client = redis.Redis(port=port, password=SECRET)
        client.execute_command(
            "ACL", "SETUSER", "watcher", "on", ">watcher-pass", "+ping", "+select", "allkeys"
        )
        client.close()
        yield {"port": port, "tls_port": tls_port, "socket": sock, "cert": cert}
    finally:
        proc.stop()


def ping(url: str) -> tuple[str | None, dict[str, float]]:
    return outcome(RedisHealth(RedisConfig(url=url), **SCHEDULE))


@pytest.mark.parametrize(
    "url",
    [
        "redis://:{secret}@127.0.0.1:{port}/2",
        "redis://:{secret}@127.0.0.1:{port}?db=3",
        "redis://watcher:watcher-pass@127.0.0.1:{port}/1",  # ACL user: AUTH user password
        "unix://:{secret}@{socket}?db=1",
        "rediss://:{secret}@127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}",
        "rediss://:{secret}@localhost:{tls_port}?ssl_ca_certs={cert}&ssl_check_hostname=true",
        "rediss://:{secret}@127.0.0.1:{tls_port}?ssl_cert_reqs=none",
    ],
    ids=[
        "password+db",
        "db in query",
        "acl user",
        "unix socket",
        "tls",
        "tls hostname",
        "tls unverified",
    ],
)
def test_redis_ping_url_forms(secured_redis, url):
    error, got = ping(url.format(secret=SECRET, **secured_redis))
    assert error is None
    assert got["platform_redis_up"] == 1
    assert got["platform_redis_ping_duration_seconds"] > 0


@pytest.mark.parametrize(
    "url, expected",
    [
        ("redis://127.0.0.1:{port}/0", "RedisError: NOAUTH Authentication required."),
        (
            "redis://:not-it@127.0.0.1:{port}/0",
            "RedisError: WRONGPASS invalid username-password pair or user is disabled.",
        ),
        ("redis://:{secret}@127.0.0.1:{port}/99", "RedisError: ERR DB index is out of range"),
        (
            "rediss://:{secret}@127.0.0.1:{tls_port}/0",
            "SSLCertVerificationError: [SSL: "
            "CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
        ),
    ],
    ids=["no password", "wrong password", "no such db", "unknown certificate"],
)
def test_redis_failures_are_described_without_the_password(secured_redis, url, expected):
    error, got = ping(url.format(secret=SECRET, **secured_redis))
    assert error.startswith(expected)
    assert SECRET not in error
    assert got == {"platform_redis_up": 0}


def test_redis_url_problems_are_configuration_errors():
    with pytest.raises(ConfigError) as info:
        validate({"collectors": {"redis": {"url": f"redis://:{SECRET}@cache:port/0"}}}, {})
    assert info.value.lines() == ["collectors.redis.url: Redis URL: the port must be a number"]
    with pytest.raises(ConfigError) as info:
        validate({"collectors": {"redis": {"url": "rediss://cache?ssl_cert_reqs=maybe"}}}, {})
    assert info.value.lines() == [
        "collectors.redis.url: Redis URL: ssl_cert_reqs must be none, optional or required"
    ]
