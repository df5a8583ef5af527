"""Reading JSON request bodies without letting a hostile body crash the request.

Python's JSON decoder raises RecursionError (not a ValueError) on deeply nested
input such as ``[[[[...]]]]``, which Flask and webargs would let through as a
500. Here it becomes an ordinary decoding error, answered 400 ``invalid_json``
wherever the body is read (``request.get_json()``, webargs, the security scan).
"""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider


def loads(text: str | bytes, **kwargs: Any) -> Any:
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", "<request body>", 0) from None


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, with :func:`loads` for request bodies."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s, **kwargs)
