"""gunicorn's own error answers in the service's JSON error shape.

gunicorn refuses some requests before the app sees them: a request line longer
than ``limit_request_line`` (414), a header longer than
``limit_request_field_size`` or more than ``limit_request_fields`` headers
(431), a malformed request line, header or chunk (400), an unsupported
transfer coding (501). It writes those answers with ``gunicorn.util.write_error``,
an HTML page. :func:`install` (called by ``gunicorn.conf.py`` in each worker,
``post_worker_init``) replaces that function in the worker process with one that
writes ``{"error": {"code", "message", "details"}}`` (codes from
``ticketing.errors.CODES``: ``uri_too_long``, ``request_header_fields_too_large``,
``bad_request``, ...), so every answer of the service, whoever writes it, has
the one shape.
"""

from __future__ import annotations

import socket
from typing import Any

from gunicorn import util  # type: ignore[import-untyped]  # gunicorn has no type information

from ticketing.errors import CODES, error_body

#: gunicorn's messages name what was too long; they never need to be longer than this.
MAX_MESSAGE = 200


def _message(status: int, reason: str, mesg: str) -> str:
    if status >= 500 and status != 501:
        return "internal error"
    text = " ".join(str(mesg or reason).split())
    return text[:MAX_MESSAGE] or reason


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``'s signature and job, in the JSON error shape."""
    code = CODES.get(status_int, "error")
    body = error_body(code, _message(status_int, reason, mesg))
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install(worker: Any = None) -> None:
    """Make gunicorn write its error answers as JSON in this process."""
    util.write_error = write_json_error
