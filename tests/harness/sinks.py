"""Local sinks that record what notifications reach them.

:class:`SMTPSink` is a real SMTP server (aiosmtpd) that keeps every message;
:class:`HTTPSink` is a threaded HTTP server that keeps every request (Slack
incoming-webhook posts, Alertmanager webhooks, partner webhooks) and answers
with a configurable status, so delivery failures can be simulated too.

    with HTTPSink() as sink:
        post(sink.url + "/slack", json={...})
        [req] = sink.wait_for(1)
        assert req.json["text"]
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.harness.processes import free_port


def _wait(
    items: list,
    lock: threading.Lock,
    count: int,
    timeout: float,
    predicate: Callable | None,
    what: str,
) -> list:
    deadline = time.monotonic() + timeout
    while True:
        with lock:
            matched = [i for i in items if predicate is None or predicate(i)]
        if len(matched) >= count:
            return matched
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: expected {count}, got {len(matched)} in {timeout:.0f}s")
        time.sleep(0.05)


# ------------------------------------------------------------------------ SMTP


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    received_at: float

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def text(self) -> str:
        """All text parts, decoded, joined."""
        parts = []
        for part in self.message.walk():
            if part.get_content_maintype() == "text":
                parts.append(part.get_content())
        return "\n".join(parts)


class SMTPSink:
    """An SMTP server on a free loopback port that accepts and keeps every message."""

    def __init__(self, port: int | None = None, auth_required: bool = False) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller = None

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(
                ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message, time.time())
            )
        return "250 Message accepted for delivery"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> SMTPSink:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(
        self,
        count: int = 1,
        timeout: float = 60.0,
        predicate: Callable[[ReceivedMail], bool] | None = None,
    ) -> list[ReceivedMail]:
        return _wait(self.messages, self._lock, count, timeout, predicate, "emails")

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def __enter__(self) -> SMTPSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------------------ HTTP


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def json(self):
        return json.loads(self.body or b"null")


class HTTPSink:
    """A threaded HTTP server that records each request and answers ``status``.

    ``status`` may be changed while running (e.g. to 500 to make a receiver fail);
    ``responses`` maps a path to a ``(status, body)`` pair for canned answers;
    ``script(path, [500, 500])`` answers the next requests to ``path`` with
    those statuses, in order, then as before.
    """

    def __init__(self, port: int | None = None, status: int = 200) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.status = status
        self.responses: dict[str, tuple[int, bytes]] = {}
        self.scripts: dict[str, list[int]] = {}
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with sink._lock:
                    sink.requests.append(
                        ReceivedRequest(
                            self.command, self.path, dict(self.headers.items()), body, time.time()
                        )
                    )
                    path = self.path.split("?")[0]
                    scripted = sink.scripts.get(path)
                    scripted_status = scripted.pop(0) if scripted else None
                status, payload = sink.responses.get(path, (sink.status, b"ok"))
                if scripted_status is not None:
                    status = scripted_status
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender died (a killed Alertmanager): the request is recorded

            do_GET = do_POST = do_PUT = do_DELETE = _record

            def log_message(self, *args) -> None:
                pass

        return Handler

    def start(self) -> HTTPSink:
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def script(self, path: str, statuses: list[int]) -> None:
        with self._lock:
            self.scripts[path] = list(statuses)

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path.split("?")[0] == path]

    def wait_for(
        self,
        count: int = 1,
        timeout: float = 60.0,
        path: str | None = None,
        predicate: Callable[[ReceivedRequest], bool] | None = None,
    ) -> list[ReceivedRequest]:
        def match(r: ReceivedRequest) -> bool:
            return (path is None or r.path.split("?")[0] == path) and (
                predicate is None or predicate(r)
            )

        return _wait(self.requests, self._lock, count, timeout, match, f"requests to {path or '*'}")

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> HTTPSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------ hanging endpoint


class HangingSink:
    """A TCP server that accepts connections, reads what comes, and never answers:
    a partner endpoint that hangs (the sender's read timeout ends each attempt)."""

    def __init__(self) -> None:
        import socket

        self.host = "127.0.0.1"
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self._connections: list = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._connections.append(connection)  # kept open, never answered

    def start(self) -> HangingSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(2)
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                connection.close()

    def __enter__(self) -> HangingSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
