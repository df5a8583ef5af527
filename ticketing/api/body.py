"""Reading JSON request bodies without letting a hostile body crash the request.

Python's JSON decoder raises RecursionError (not a ValueError) on deeply nested
input such as ``[[[[...]]]]``, which Flask and webargs would let through as a
500. Here it becomes an ordinary decoding error, answered 400 ``invalid_json``
wherever the body is read (``request.get_json()``, webargs' parser in ``api/base.py``,
the security scan).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask.json.provider import DefaultJSONProvider


@contextmanager
def nesting_is_a_decoding_error() -> Iterator[None]:
    """Turn the decoder's RecursionError on a too deeply nested body into a JSONDecodeError."""
    try:
        yield
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", "<request body>", 0) from None


def loads(text: str | bytes, **kwargs: Any) -> Any:
    with nesting_is_a_decoding_error():
        return json.loads(text, **kwargs)


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, with :func:`loads` for request bodies."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s, **kwargs)
