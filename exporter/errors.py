"""One-line descriptions of failures, for /status, logs and ``last_error``.

>>> describe_error(TimeoutError("query interrupted by the 2s timeout"))
'TimeoutError: query interrupted by the 2s timeout'
"""

from __future__ import annotations


def describe_error(exc: BaseException) -> str:
    """``Type: first line of the message`` (drivers add hints and context on later lines)."""
    text = str(exc).strip().splitlines()
    first = text[0].strip() if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
