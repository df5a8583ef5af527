"""Rate limits per API key (or client IP) and action, kept in Redis by Flask-Limiter.

Actions and what counts against them (limits in the ``ratelimits.limits``
setting; defaults ``login`` 5/minute, ``withdrawal`` 3/minute, ``api_call``
100/minute, ``ticket_create`` 20/minute):

- ``api_call``: every request under ``ratelimits.api_prefix`` (``/api/``), per
  API key, or per client IP when the request carries none;
- ``login``: failed API key checks, per client IP. Once an IP has used up its
  failures, its requests under the API prefix are answered 429 before any key
  is checked, until the window ends (so keys cannot be guessed faster). A key
  this process accepted within the last minute is not a guess: requests with
  it skip this check, so a partner sharing an IP with a guesser keeps working
  (and saves a Redis round trip);
- any other action (``ticket_create``, ``withdrawal``, ...): requests to views
  marked with :func:`ratelimit` or to routes listed for the action in
  ``ratelimits.routes`` (``ticket_create: ["POST /api/v1/tickets"]``), per API key.

Each action is a Flask-Limiter application-wide limit with its own scope, so a
key's ``api_call`` budget is shared by all routes and an action's budget by all
routes of that action. Counters live in Redis (``ratelimits.storage_url``,
default ``REDIS_URL``) and are shared by every worker and every process.

Over a limit the answer is 429 with the JSON error body and ``Retry-After``
(seconds), ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (Unix time) headers; the rejection counts in
``ratelimit_rejections_total{action}`` and is recorded as a RATE_LIMIT_EXCEEDED
security event. Every limited response carries the ``X-RateLimit-*`` headers
of its most specific limit.

When Redis fails, Flask-Limiter's in-memory fallback takes over: the same
limits, counted per process, so service goes on and abuse is still throttled.
Every storage error counts in ``ratelimit_backend_errors_total`` and the outage
is logged once when it starts and once when it ends; Flask-Limiter probes
Redis with exponential back-off (1, 2, 4, ... 32 s) and returns to it by itself.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from flask import Flask, Response, current_app, g, jsonify, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded, RequestLimit
from limits.storage import MemoryStorage, RedisStorage, Storage
from redis.backoff import NoBackoff
from redis.retry import Retry

from ticketing.config import ConfigError

from .metrics import ratelimit_backend_errors, ratelimit_rejections

if TYPE_CHECKING:
    from . import MonitorState

log = logging.getLogger("ticketing.security.rate_limits")

F = TypeVar("F", bound=Callable[..., Any])

#: Attribute that :func:`ratelimit` sets on a view function.
ACTIONS_ATTR = "_ratelimit_actions"
#: ``g`` flag: this request failed an API key check (deducted from ``login``).
AUTH_FAILED_FLAG = "_security_auth_failed"
_DIGEST = "_security_key_digest"
_warned_memory = False


def ratelimit(action: str) -> Callable[[F], F]:
    """Count requests to this view under ``action`` (its limit comes from configuration).

        @bp.post("/withdrawals")
        @ratelimit("withdrawal")
        def create_withdrawal(): ...

    The view keeps counting against ``api_call`` as well. An action without a
    configured limit stops the app at start-up (for views registered before
    the monitor's ``init_app``, as in the ticket service).
    """
    def mark(view: F) -> F:
        actions = set(getattr(view, ACTIONS_ATTR, ())) | {action}
        setattr(view, ACTIONS_ATTR, frozenset(actions))
        return view

    return mark


class _OutageLog:
    """Logs once when the storage starts failing and once when it answers again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failing = False

    def error(self, what: str, exc: BaseException | None) -> None:
        ratelimit_backend_errors.inc()
        with self._lock:
            first, self.failing = not self.failing, True
        if first:
            log.warning("rate-limit storage unreachable (%s: %s); limits are counted per "
                        "process until it answers again", what, exc or "ping failed")

    def ok(self) -> None:
        if self.failing:
            with self._lock:
                was, self.failing = self.failing, False
            if was:
                log.warning("rate-limit storage answers again; limits are shared again")


class MonitoredRedisStorage(RedisStorage):
    """Redis storage for ``limits`` that counts and logs its errors.

    Registered for the ``monitored+redis://`` (``+rediss``, ``+redis+unix``)
    schemes; :func:`storage_uri` turns a Redis URL into one of these.
    """

    STORAGE_SCHEME = ["monitored+redis", "monitored+rediss", "monitored+redis+unix"]
    outage = _OutageLog()

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri.removeprefix("monitored+"), **options)

    def _watch(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = getattr(super(), name)(*args, **kwargs)
        except Exception as exc:
            self.outage.error(name, exc)
            raise
        self.outage.ok()
        return result

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._watch("incr", key, expiry, amount)

    def get(self, key: str) -> int:
        return self._watch("get", key)

    def get_expiry(self, key: str) -> float:
        return self._watch("get_expiry", key)

    def clear(self, key: str) -> None:
        return self._watch("clear", key)

    def acquire_entry(self, *args: Any, **kwargs: Any) -> bool:
        return self._watch("acquire_entry", *args, **kwargs)

    def get_moving_window(self, *args: Any, **kwargs: Any) -> tuple[float, int]:
        return self._watch("get_moving_window", *args, **kwargs)

    def acquire_sliding_window_entry(self, *args: Any, **kwargs: Any) -> bool:
        return self._watch("acquire_sliding_window_entry", *args, **kwargs)

    def get_sliding_window(self, *args: Any, **kwargs: Any) -> tuple[int, float, int, float]:
        return self._watch("get_sliding_window", *args, **kwargs)

    def check(self) -> bool:
        healthy = super().check()
        if healthy:
            self.outage.ok()
        else:
            self.outage.error("ping", None)
        return bool(healthy)


def storage_uri(url: str) -> str:
    """The storage URI Flask-Limiter gets: Redis URLs go through :class:`MonitoredRedisStorage`."""
    if url.split("://", 1)[0] in ("redis", "rediss", "redis+unix"):
        return "monitored+" + url
    return url


def storage_options(url: str, timeout: float) -> dict[str, Any]:
    """Short timeouts and a single immediate retry, so a dead Redis costs milliseconds."""
    if not url.startswith("monitored+"):
        return {}
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout,
            "retry": Retry(NoBackoff(), 1)}


# ---------------------------------------------------------------- key functions

def key_digest(state: "MonitorState") -> str | None:
    """A digest of the request's API key (never stored in clear), once per request."""
    if _DIGEST not in g:
        raw = request.headers.get(state.api_key_header)
        setattr(g, _DIGEST, hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:24]
                if raw else None)
    return g.get(_DIGEST)


def client_identity(state: "MonitorState") -> str:
    """``key:<digest of the API key>`` or, without a key, ``ip:<client IP>``."""
    digest = key_digest(state)
    if digest:
        return "key:" + digest
    return "ip:" + (state.client_ip() or "unknown")


class KnownKeys:
    """Digests of API keys this process accepted recently (bounded, expiring).

    A request with such a key is not guessing keys, so it skips the ``login``
    check. A key that fails a check is forgotten at once.
    """

    def __init__(self, ttl: float = 60.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, digest: str) -> None:
        with self._lock:
            self._seen[digest] = time.monotonic() + self.ttl
            self._seen.move_to_end(digest)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)

    def discard(self, digest: str | None) -> None:
        if digest:
            with self._lock:
                self._seen.pop(digest, None)

    def __contains__(self, digest: str | None) -> bool:
        if not digest:
            return False
        expires = self._seen.get(digest)
        return expires is not None and expires > time.monotonic()


def _state() -> "MonitorState":
    return current_app.extensions["security_monitor"]


def _is_api_request() -> bool:
    return request.path.startswith(_state().ratelimits.api_prefix)


def _action_applies(action: str) -> bool:
    state = _state()
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and action in getattr(view, ACTIONS_ATTR, ()):
        return True
    rule = request.url_rule
    if rule is None:
        return False
    return f"{request.method} {rule.rule}" in state.ratelimits.routes.get(action, ())


class FailureCounter:
    """Counts failures per key in a window: in Redis when it answers, else in this process.

    ``add(key)`` returns the count in the current window (which starts at the
    first failure and lasts ``window_seconds``). After a Redis error this
    process counts in memory for ``retry_seconds`` before trying Redis again.
    """

    def __init__(self, storage: Callable[[], Storage | None], window_seconds: int,
                 prefix: str, retry_seconds: float = 5.0) -> None:
        self._storage = storage
        self.window_seconds = window_seconds
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self._memory = MemoryStorage()
        self._redis_down_until = 0.0

    def add(self, key: str) -> int:
        full_key = f"{self.prefix}/failed_auth/{key}"
        storage = self._storage()
        if (storage is not None and not isinstance(storage, MemoryStorage)
                and time.monotonic() >= self._redis_down_until):
            try:
                return int(storage.incr(full_key, self.window_seconds))
            except Exception:  # counted and logged by the storage
                self._redis_down_until = time.monotonic() + self.retry_seconds
        return int(self._memory.incr(full_key, self.window_seconds))


# ---------------------------------------------------------------- the limiter

def build_limiter(app: Flask, state: "MonitorState") -> Limiter:
    """A Flask-Limiter for ``app`` with one application-wide limit per configured action."""
    settings = state.ratelimits
    unknown = sorted({f"ratelimits.limits.{action}: no limit configured for the action of "
                      f"view {endpoint!r}"
                      for endpoint, view in app.view_functions.items()
                      for action in getattr(view, ACTIONS_ATTR, ())
                      if action not in settings.limits})
    if unknown:
        raise ConfigError(unknown)
    specific = [a for a in settings.limits if a not in ("api_call", "login")]
    limits: list[ApplicationLimit] = []
    identity = partial(client_identity, state)
    for action in specific:
        limits.append(ApplicationLimit(
            partial(_limit_value, action), key_function=identity, scope=action,
            exempt_when=lambda a=action: not _action_applies(a),
            on_breach=partial(_on_breach, action)))
    if "api_call" in settings.limits:
        limits.append(ApplicationLimit(
            partial(_limit_value, "api_call"), key_function=identity, scope="api_call",
            exempt_when=lambda: not _is_api_request(),
            on_breach=partial(_on_breach, "api_call")))
    if "login" in settings.limits:
        limits.append(ApplicationLimit(
            partial(_limit_value, "login"), key_function=lambda: "ip:" + (
                state.client_ip() or "unknown"),
            scope="login",
            exempt_when=lambda: not _is_api_request() or key_digest(state) in state.known_keys,
            deduct_when=lambda response: bool(g.get(AUTH_FAILED_FLAG)),
            on_breach=partial(_on_breach, "login")))

    uri = storage_uri(settings.storage_url)
    limiter = Limiter(
        key_func=identity,
        application_limits=limits,
        storage_uri=uri,
        storage_options=storage_options(uri, settings.redis_timeout_seconds),
        strategy=settings.strategy,
        key_prefix=settings.key_prefix,
        headers_enabled=True,
        retry_after="delta-seconds",
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        enabled=settings.enabled,
    )
    global _warned_memory
    if settings.enabled and uri.startswith("memory://") and not _warned_memory:
        _warned_memory = True
        log.warning("rate limits are kept in process memory (no ratelimits.storage_url or "
                    "REDIS_URL): each worker counts on its own")
    app.register_error_handler(RateLimitExceeded, _rate_limited_response)
    # after_request hooks run in reverse order of registration: this one after
    # Flask-Limiter's (which adds the headers)...
    app.after_request(_drop_retry_after_unless_limited)
    limiter.init_app(app)
    # ...and this one before it, so that a failed check it causes is deducted.
    app.after_request(_remember_accepted_key)
    return limiter


def _limit_value(action: str) -> str:
    return _state().ratelimits.limits[action]


def _on_breach(action: str, limit: RequestLimit) -> Response:
    """Count the rejection, record it, and build the JSON 429 body."""
    ratelimit_rejections.labels(action=action).inc()
    try:
        retry_after = max(0, int(limit.reset_at - time.time()))
    except Exception:  # the storage died between the hit and now
        retry_after = int(limit.limit.get_expiry())
    limit_text = str(limit.limit)
    from .events import EventType, record_event

    # A login refusal is answered before any key is checked, and stays so: the
    # event names no actor (resolving it would check the key after all).
    extra = {"actor": None} if action == "login" else {}
    record_event(EventType.RATE_LIMIT_EXCEEDED, coalesce=1.0,
                 details={"action": action, "limit": limit_text}, **extra)
    response = jsonify(error={
        "code": "rate_limited",
        "message": f"Too many requests: the {action} limit is {limit_text}. "
                   f"Retry in {retry_after} s.",
        "details": {"action": action, "limit": limit_text, "retry_after": retry_after},
    })
    response.status_code = 429
    return response


def _rate_limited_response(exc: RateLimitExceeded) -> Response:
    if exc.response is not None:
        return exc.response
    response = jsonify(error={"code": "rate_limited", "message": "Too many requests.",
                              "details": {"limit": str(exc.limit.limit)}})
    response.status_code = 429
    return response


def _remember_accepted_key(response: Response) -> Response:
    """Remember the request's key once the app accepted it (its actor is known)."""
    digest = g.get(_DIGEST)
    if not digest or response.status_code in (401, 429) or g.get(AUTH_FAILED_FLAG):
        return response
    state = _state()
    if digest in state.known_keys:
        return response
    # Usually the view has authenticated already (the loader remembers its
    # answer); on a route that needs no key this checks it, so that a guess
    # sent to a public route cannot get itself remembered.
    if state.current_actor() is not None and not g.get(AUTH_FAILED_FLAG):
        state.known_keys.add(digest)
    return response


def _drop_retry_after_unless_limited(response: Response) -> Response:
    """Flask-Limiter adds Retry-After to every limited response; it belongs on 429s only."""
    if response.status_code != 429 and "X-RateLimit-Limit" in response.headers:
        response.headers.pop("Retry-After", None)
    return response
