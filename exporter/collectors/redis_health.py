"""Redis health: ``platform_redis_up`` and ``platform_redis_ping_duration_seconds``.

Each run opens a connection (TCP, TLS for ``rediss://``, or a Unix socket),
authenticates and selects the database when the URL says so, times one
``PING`` and closes it. The exchange is two lines of the Redis protocol
(RESP), so no client library is loaded. There are no retries: a PING that
fails or times out is reported at once as ``platform_redis_up 0`` (and a
failed ``redis`` collector).

URLs are read as redis-py reads them::

    redis://[[user]:password@]host[:port][/db]
    rediss://...?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/redis-ca.pem
    unix://[[user]:password@]/run/redis.sock?db=0

``rediss://`` verifies the server's certificate and host name by default;
``ssl_cert_reqs`` (``none``, ``optional``, ``required``),
``ssl_check_hostname``, ``ssl_ca_certs``, ``ssl_certfile`` and
``ssl_keyfile`` tune it. Other redis-py options (pool sizes, client
timeouts) have no meaning for one PING and are ignored; the timeout is the
collector's.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import CollectFailed, Collector
from exporter.errors import describe_error
from exporter.schema import RedisConfig

if TYPE_CHECKING:
    import ssl

DEFAULT_PORT = 6379
_CERT_REQS = ("none", "cert_none", "optional", "cert_optional", "required", "cert_required")


class RedisError(Exception):
    """An error reply from Redis, or an answer that is not one."""


@dataclass(frozen=True)
class RedisTarget:
    scheme: str
    host: str = "localhost"
    port: int = DEFAULT_PORT
    path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    ssl: dict[str, str] = field(default_factory=dict)


def parse_redis_url(url: str) -> RedisTarget:
    """Read a ``redis://``, ``rediss://`` or ``unix://`` URL as redis-py does."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("Redis URL must start with redis://, rediss:// or unix://")
    options = {name: values[0] for name, values in parse_qs(parts.query).items() if values}
    kwargs: dict[str, Any] = {"scheme": parts.scheme}
    username = unquote(parts.username) if parts.username else options.get("username")
    password = unquote(parts.password) if parts.password else options.get("password")
    if username:
        kwargs["username"] = username
    if password:
        kwargs["password"] = password
    db = options.get("db")
    if parts.scheme == "unix":
        kwargs["path"] = unquote(parts.path)
    else:
        if parts.hostname:
            kwargs["host"] = unquote(parts.hostname)
        try:
            port = parts.port
        except ValueError:
            raise ValueError("Redis URL: the port must be a number") from None
        if port:
            kwargs["port"] = port
        if db is None and parts.path:
            db = unquote(parts.path).replace("/", "") or None
            if db is not None and not db.isdigit():
                db = None  # as redis-py: a path that is not a number is not a database
    if db is not None:
        try:
            kwargs["db"] = int(db)
        except ValueError:
            raise ValueError("Redis URL: db must be a number") from None
    if parts.scheme == "rediss":
        kwargs["ssl"] = {k: v for k, v in options.items() if k.startswith("ssl_")}
        if kwargs["ssl"].get("ssl_cert_reqs", "required").strip().lower() not in _CERT_REQS:
            raise ValueError("Redis URL: ssl_cert_reqs must be none, optional or required")
    return RedisTarget(**kwargs)


def _ssl_context(options: Mapping[str, str]) -> ssl.SSLContext:
    import ssl

    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    check = options.get("ssl_check_hostname")
    if check is not None:
        context.check_hostname = check.strip().lower() in ("1", "true", "yes", "y", "on")
    reqs = (options.get("ssl_cert_reqs") or "required").strip().lower()
    if reqs in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif reqs in ("optional", "cert_optional"):
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _command(*args: str) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _reply(stream: BinaryIO) -> bytes:
    """Read one simple-string or error reply (all that AUTH, SELECT and PING answer)."""
    line = stream.readline(65536)
    if not line.endswith(b"\r\n"):
        raise ConnectionError(
            "connection closed by Redis" if not line else "reply from Redis cut short"
        )
    kind, text = line[:1], line[1:-2]
    if kind == b"+":
        return text
    if kind == b"-":
        raise RedisError(text.decode(errors="replace"))
    raise RedisError(f"unexpected reply from Redis: {line[:40]!r}")


def _up(value: float) -> GaugeMetricFamily:
    up = GaugeMetricFamily("platform_redis_up", "1 when Redis answered PING.")
    up.add_metric([], value)
    return up


class RedisHealth(Collector):
    def __init__(self, config: RedisConfig, **schedule: float):
        super().__init__("redis", **schedule)
        self.target = parse_redis_url(config.url)
        self.ssl_context = _ssl_context(self.target.ssl) if self.target.scheme == "rediss" else None
        handshake = []
        if self.target.password:
            handshake.append(
                _command("AUTH", *filter(None, (self.target.username, self.target.password)))
            )
        if self.target.db:
            handshake.append(_command("SELECT", str(self.target.db)))
        self.handshake = handshake

    def _open(self) -> socket.socket:
        target = self.target
        if target.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                assert target.path is not None  # parse_redis_url sets it for unix://
                sock.connect(target.path)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((target.host, target.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            try:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=target.host)
            except BaseException:
                sock.close()
                raise
        return sock

    def ping(self) -> float:
        """Connect, authenticate, select; return how long the PING took."""
        with self._open() as sock, sock.makefile("rb") as stream:
            if self.handshake:
                sock.sendall(b"".join(self.handshake))
                for _ in self.handshake:
                    _reply(stream)
            start = time.perf_counter()
            sock.sendall(_command("PING"))
            answer = _reply(stream)
            duration = time.perf_counter() - start
        if answer != b"PONG":
            raise RedisError(f"PING answered {answer[:40]!r}")
        return duration

    def collect(self) -> list[Metric]:
        try:
            duration = self.ping()
        except (OSError, RedisError) as exc:
            message = describe_error(exc)
            if self.target.password:
                message = message.replace(self.target.password, "***")
            raise CollectFailed(message, [_up(0.0)]) from None
        took = GaugeMetricFamily("platform_redis_ping_duration_seconds", "Duration of the PING.")
        took.add_metric([], duration)
        return [_up(1.0), took]

    def timeout_families(self) -> list[Metric]:
        return [_up(0.0)]
