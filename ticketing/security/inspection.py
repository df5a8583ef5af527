"""Which parts of a request are scanned for attack patterns, and how.

Scanned, each value through :func:`ticketing.security.patterns.detect`:

- ``path``: the URL path (already percent-decoded once by the server; the
  scanner decodes further);
- ``query``: every query parameter name and value;
- ``form``: every form field name and value, and uploaded file names
  (``application/x-www-form-urlencoded`` and ``multipart/form-data``);
- ``json``: every string in a JSON body, keys included, at any depth;
- ``header``: the headers named in ``security.scan.headers``
  (default ``User-Agent`` and ``Referer``).

Bodies larger than ``max_body_bytes`` are not parsed here (the view still
gets them), a JSON document is walked at most ``MAX_DEPTH`` levels deep and
``MAX_VALUES`` strings far, and each value is cut at ``max_value_chars``: the
cost of scanning has a ceiling whatever a client sends. Nothing here changes
the request.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from flask import Request

from ticketing.security.patterns import Finding, detect
from ticketing.security.settings import ScanSettings

MAX_DEPTH = 32
MAX_VALUES = 5_000
MAX_BODY_BYTES = 2 * 1024 * 1024
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _json_strings(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        yield path or "$", value
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield child, key
            yield from _json_strings(item, child, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}[{index}]", depth + 1)


@lru_cache(maxsize=64)
def _environ_key(header: str) -> str:
    """Where WSGI keeps a request header (what werkzeug's ``request.headers`` reads)."""
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


def request_values(
    req: Request, settings: ScanSettings, max_body_bytes: int = MAX_BODY_BYTES
) -> Iterator[tuple[str, str | None, str]]:
    """``(part, field, value)`` for every scanned value of ``req``.

    Headers and the body length are read from the WSGI environ: the same
    values as ``req.headers`` gives, for less work in every request.
    """
    yield "path", None, req.path
    if req.query_string:
        for key, value in req.args.items(multi=True):
            yield "query", key, key
            yield "query", key, value
    environ = req.environ
    for name in settings.headers:
        header = environ.get(_environ_key(name))
        if header:
            yield "header", name, header

    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit() and int(length) > max_body_bytes:
        return
    if req.mimetype in _FORM_TYPES:
        try:
            form, files = req.form, req.files
        except Exception:  # a malformed body: the view answers it
            return
        for key, value in form.items(multi=True):
            yield "form", key, key
            yield "form", key, value
        for key, upload in files.items(multi=True):
            if upload.filename:
                yield "form", key, upload.filename
    elif req.is_json:
        data = req.get_json(silent=True)
        if data is not None:
            for count, (field, value) in enumerate(_json_strings(data, "")):
                if count >= MAX_VALUES:
                    break
                yield "json", field, value


def scan_request(req: Request, settings: ScanSettings) -> list[Finding]:
    """All findings in ``req`` (one per class and value at most)."""
    findings: list[Finding] = []
    for part, field, value in request_values(req, settings):
        findings.extend(
            detect(
                value,
                part,
                field,
                max_rounds=settings.max_decode_rounds,
                max_chars=settings.max_value_chars,
            )
        )
    return findings
