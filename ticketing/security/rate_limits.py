"""Rate limits per API key (or client IP) and action, counted in Redis.

Actions and what counts against them (limits in the ``ratelimits.limits``
setting; defaults ``login`` 5/minute, ``withdrawal`` 3/minute, ``api_call``
100/minute, ``ticket_create`` 20/minute):

- ``api_call``: every request under ``ratelimits.api_prefix`` (``/api/``), per
  API key, or per client IP when the request carries none;
- ``login``: failed API key checks, per client IP. Once an IP has used up its
  failures, its requests under the API prefix and to the routes listed for
  ``login`` in ``ratelimits.routes`` (the live feed's ``GET /ws/monitoring``)
  are answered 429 before any key is checked, until the window ends (so keys
  cannot be guessed faster). A key accepted within the last minute is not a
  guess: requests with it skip this check, so a partner sharing an IP with a
  guesser keeps working. Each process remembers the keys it accepted, and
  marks them in Redis (``<key_prefix>/known_key/<digest>``, for a minute,
  renewed while the key is used) so that every other worker and replica
  skips the check for them too, in the same round trip as the limits;
- any other action (``ticket_create``, ``withdrawal``, ...): requests to views
  marked with :func:`ratelimit` or to routes listed for the action in
  ``ratelimits.routes`` (``ticket_create: ["POST /api/v1/tickets"]``), per API key.

Each action has its own counter per key, so a key's ``api_call`` budget is
shared by all routes and an action's budget by all routes of that action.
Counters live in Redis (``ratelimits.storage_url``, default ``REDIS_URL``) and
are shared by every worker and every process. The limits of a request are
checked from the most specific action to ``api_call`` and ``login``, all in
one Redis round trip (:mod:`ticketing.security.counters`); a refused request
stops at the first limit it exceeds, and the ones after it are not used up.
The limits are parsed once, at start-up, and which actions a route counts
under is worked out once per route.

Over a limit the answer is 429 with the JSON error body and ``Retry-After``
(seconds), ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (Unix time) headers; the rejection counts in
``ratelimit_rejections_total{action}`` and is recorded as a RATE_LIMIT_EXCEEDED
security event. Every limited response carries the ``X-RateLimit-*`` headers
of its most specific limit.

When Redis fails, the same limits are counted in each process, so service
goes on and abuse is still throttled; Redis is probed with exponential
back-off (1, 2, 4, ... 32 s) and counting returns to it by itself (see
:mod:`ticketing.security.counters`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Flask, Request, Response, current_app, g, jsonify, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage

from ticketing.config import ConfigError
from ticketing.security.counters import Check, Limiter, MonitoredRedisStorage, Result, storage_uri
from ticketing.security.metrics import ratelimit_rejections
from ticketing.security.settings import RateLimitSettings

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

    from ticketing.security import MonitorState

__all__ = ["Limiter", "MonitoredRedisStorage", "RatePlan", "build_limiter", "ratelimit"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: Attribute that :func:`ratelimit` sets on a view function.
ACTIONS_ATTR = "_ratelimit_actions"
#: ``g`` flag: this request failed an API key check (deducted from ``login``).
AUTH_FAILED_FLAG = "_security_auth_failed"
_DIGEST = "_security_key_digest"
_HEADER_RESULT = "_security_ratelimit_result"  # g: the limit the X-RateLimit-* headers show
_LOGIN_CHECK = "_security_login_check"  # g: deducted if a key check fails
_warned_memory = False

#: Flask's ``request`` as what it is, a proxy (Flask types it as the request):
#: hot paths take the request itself from it once.
_request_proxy = cast("LocalProxy[Request]", request)


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


# ---------------------------------------------------------------- key functions


def key_digest(state: MonitorState) -> str | None:
    """A digest of the request's API key (never stored in clear), once per request."""
    flags = g._get_current_object()
    try:
        cached: str | None = getattr(flags, _DIGEST)
        return cached
    except AttributeError:
        raw = request.headers.get(state.api_key_header)
        digest: str | None
        if raw:
            digest = hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:24]
        else:  # a signed-in session stands for its key (the same digest)
            digest = state.session_key_digest() if state.session_key_digest else None
        setattr(flags, _DIGEST, digest)
        return digest


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

    def needs_renewal(self, digest: str) -> bool:
        """Whether ``digest`` is unknown or past half its time (its shared marker is renewed)."""
        expires = self._seen.get(digest)
        return expires is None or expires - time.monotonic() < self.ttl / 2

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


def _state() -> MonitorState:
    state: MonitorState = current_app.extensions["security_monitor"]
    return state


class FailureCounter:
    """Counts failures per key in a window: in Redis when it answers, else in this process.

    ``add(key)`` returns the count in the current window (which starts at the
    first failure and lasts ``window_seconds``). After a Redis error this
    process counts in memory for ``retry_seconds`` before trying Redis again.
    """

    def __init__(
        self,
        storage: Callable[[], Storage | None],
        window_seconds: int,
        prefix: str,
        retry_seconds: float = 5.0,
    ) -> None:
        self._storage = storage
        self.window_seconds = window_seconds
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self._memory = MemoryStorage()
        self._redis_down_until = 0.0

    def add(self, key: str) -> int:
        full_key = f"{self.prefix}/failed_auth/{key}"
        storage = self._storage()
        if (
            storage is not None
            and not isinstance(storage, MemoryStorage)
            and time.monotonic() >= self._redis_down_until
        ):
            try:
                return int(storage.incr(full_key, self.window_seconds))
            except Exception:  # counted and logged by the storage
                self._redis_down_until = time.monotonic() + self.retry_seconds
        return int(self._memory.incr(full_key, self.window_seconds))


# ---------------------------------------------------------------- the limits


class RatePlan:
    """The configured limits, parsed once, and the checks they make for a request."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.items: Mapping[str, tuple[RateLimitItem, ...]] = {
            action: tuple(parse_many(text)) for action, text in settings.limits.items()
        }
        #: Actions counted on chosen routes, in the order they are checked.
        self.specific = tuple(a for a in settings.limits if a not in ("api_call", "login"))
        self.routes = settings.routes
        #: Routes outside the API prefix where a key is checked (the WebSocket feed).
        self.login_routes = frozenset(settings.routes.get("login", ()))
        self.api_prefix = settings.api_prefix
        self.key_prefix = settings.key_prefix
        # Per action, each rate with its counter key around the caller's identity:
        # head + who + tail is ``item.key_for(key_prefix, who, action)``.
        self._keys = {
            action: tuple(
                (
                    item,
                    f"{item.namespace}/{self.key_prefix}/",
                    f"/{action}/{item.amount}/{item.multiples}/{item.GRANULARITY.name}",
                )
                for item in items
            )
            for action, items in self.items.items()
        }
        self._route_actions: dict[
            tuple[str | None, str, str], tuple[tuple[str, ...], frozenset[str]]
        ] = {}

    def route_actions(self, req: Request) -> tuple[str, ...]:
        """The specific actions the route of ``req`` counts under (cached per route)."""
        return self._route(req)[0]

    def _route(self, req: Request) -> tuple[tuple[str, ...], frozenset[str]]:
        """(specific actions, marks among ``api_call``/``login``) of the route of ``req``.

        A view outside the API prefix marked ``@ratelimit("api_call")`` or
        ``@ratelimit("login")`` counts like an API route (the support console).
        """
        rule = req.url_rule
        if rule is None:  # no route matched: nothing marks it
            return (), frozenset()
        cache_key = (req.endpoint, req.method, rule.rule)
        found = self._route_actions.get(cache_key)
        if found is None:
            view = current_app.view_functions.get(req.endpoint or "")
            marked = getattr(view, ACTIONS_ATTR, ()) if view is not None else ()
            route = f"{req.method} {rule.rule}"
            actions = tuple(
                action
                for action in self.specific
                if action in marked or route in self.routes.get(action, ())
            )
            found = (actions, frozenset(marked) & {"api_call", "login"})
            self._route_actions[cache_key] = found
        return found

    def _checks(
        self, action: str, who: str, hit: bool = True, unless: str | None = None
    ) -> list[Check]:
        identifiers = (self.key_prefix, who, action)
        return [
            Check(action, item, identifiers, hit, head + who + tail, unless)
            for item, head, tail in self._keys[action]
        ]

    def known_key_marker(self, digest: str) -> str:
        """The shared marker of an accepted key (see :meth:`Limiter.mark`)."""
        return f"{self.key_prefix}/known_key/{digest}"

    def checks(self, state: MonitorState) -> list[Check]:
        """The limits of the current request, most specific first."""
        req = _request_proxy._get_current_object()
        actions, marks = self._route(req)
        api = req.path.startswith(self.api_prefix) or "api_call" in marks
        login = (
            api
            or "login" in marks
            or (
                req.url_rule is not None
                and f"{req.method} {req.url_rule.rule}" in self.login_routes
            )
        )
        if not actions and not login:
            return []
        digest = key_digest(state)
        who = "key:" + digest if digest else "ip:" + (state.client_ip() or "unknown")
        checks: list[Check] = []
        for action in actions:
            checks += self._checks(action, who)
        if api and "api_call" in self._keys:
            checks += self._checks("api_call", who)
        if login and "login" in self._keys and digest not in state.known_keys:
            checks += self._checks(
                "login",
                "ip:" + (state.client_ip() or "unknown"),
                hit=False,
                unless=self.known_key_marker(digest) if digest else None,
            )
        return checks


def build_limiter(app: Flask, state: MonitorState) -> Limiter:
    """The limiter of ``app``, with its request hooks (none when limits are switched off)."""
    settings = state.ratelimits
    unknown = sorted(
        {
            f"ratelimits.limits.{action}: no limit configured for the action of view {endpoint!r}"
            for endpoint, view in app.view_functions.items()
            for action in getattr(view, ACTIONS_ATTR, ())
            if action not in settings.limits
        }
    )
    if unknown:
        raise ConfigError(unknown)
    limiter = Limiter(
        settings.storage_url, settings.strategy, timeout=settings.redis_timeout_seconds
    )
    state.rate_plan = RatePlan(settings)
    if not settings.enabled:
        return limiter
    global _warned_memory
    if storage_uri(settings.storage_url).startswith("memory://") and not _warned_memory:
        _warned_memory = True
        log.warning(
            "rate limits are kept in process memory (no ratelimits.storage_url or "
            "REDIS_URL): each worker counts on its own"
        )
    app.before_request(_apply_limits)
    app.after_request(_after_request)
    return limiter


def _apply_limits() -> Response | None:
    """before_request: count the request against its limits; 429 over one of them."""
    state = _state()
    plan, limiter = state.rate_plan, state.limiter
    if plan is None or limiter is None:  # init_app sets both before adding this hook
        return None
    checks = plan.checks(state)
    if not checks:
        return None
    try:
        results = limiter.evaluate(checks)
    except Exception:
        log.exception("rate limits could not be applied; the request is served")
        return None
    last = results[-1]
    flags = g._get_current_object()
    setattr(flags, _HEADER_RESULT, results[0] if last.allowed else last)
    if len(results) == len(checks) and not checks[-1].hit:
        setattr(flags, _LOGIN_CHECK, checks[-1])  # reached: deducted if the key check fails
    if not last.allowed:
        return _refused(last)
    return None


def _refused(result: Result) -> Response:
    """Count the rejection, record it, and build the JSON 429 body."""
    action = result.check.action
    ratelimit_rejections.labels(action=action).inc()
    retry_after = max(0, int(_reset_at(result) - time.time()))
    limit_text = str(result.check.item)
    from ticketing.security.events import EventType, record_event

    # A login refusal is answered before any key is checked, and stays so: the
    # event names no actor (resolving it would check the key after all).
    extra = {"actor": None} if action == "login" else {}
    record_event(
        EventType.RATE_LIMIT_EXCEEDED,
        coalesce=1.0,
        details={"action": action, "limit": limit_text},
        **extra,
    )
    response = jsonify(
        error={
            "code": "rate_limited",
            "message": f"Too many requests: the {action} limit is {limit_text}. "
            f"Retry in {retry_after} s.",
            "details": {"action": action, "limit": limit_text, "retry_after": retry_after},
        }
    )
    response.status_code = 429
    return response


def _reset_at(result: Result) -> int:
    """The whole second after the window ends (what X-RateLimit-Reset says)."""
    return int((result.reset or time.time()) + 1)


def _after_request(response: Response) -> Response:
    """Remember an accepted key, deduct a failed key check, add the X-RateLimit-* headers."""
    state = _state()
    flags = g._get_current_object()
    _remember_accepted_key(state, flags, response)
    if flags.get(AUTH_FAILED_FLAG):
        deduct_failed_login(state)
    result: Result | None = flags.get(_HEADER_RESULT)
    if result is not None and result.remaining is not None:
        reset_at = _reset_at(result)
        # Added, not set: only the monitor writes these, so there is none to replace
        # (``set`` would compare every header's name first).
        add = response.headers.add
        add("X-RateLimit-Limit", str(result.check.item.amount))
        add("X-RateLimit-Remaining", str(result.remaining))
        add("X-RateLimit-Reset", str(reset_at))
        if not result.allowed:
            response.headers["Retry-After"] = str(max(0, int(reset_at - time.time())))
    return response


def deduct_failed_login(state: MonitorState) -> None:
    """Count the request's failed key check against ``login``, at most once.

    Called as the check fails, so the next guess already meets the lower
    budget (a WebSocket client hears 4401 before its connection's request
    ends), and again after the request for a check that failed before the
    limits were looked at.
    """
    login = g.pop(_LOGIN_CHECK, None)
    if login is None or state.limiter is None:
        return
    try:
        state.limiter.deduct(login)
    except Exception:
        log.exception("a failed key check could not be deducted from the login limit")


def _remember_accepted_key(state: MonitorState, flags: Any, response: Response) -> None:
    """Remember the request's key once the app accepted it (its actor is known)."""
    digest = flags.get(_DIGEST)
    if not digest or response.status_code in (401, 429) or flags.get(AUTH_FAILED_FLAG):
        return
    if not state.known_keys.needs_renewal(digest):
        return
    # Usually the view has authenticated already (the loader remembers its
    # answer); on a route that needs no key this checks it, so that a guess
    # sent to a public route cannot get itself remembered.
    if state.current_actor() is not None and not flags.get(AUTH_FAILED_FLAG):
        # A key this process still knows has a live marker (set at least half
        # its time ago): the renewal rides on the next check's round trip. A
        # key new here is marked at once, for the other processes' next request.
        renewal = digest in state.known_keys
        state.known_keys.add(digest)
        if state.limiter is not None and state.rate_plan is not None:
            marker = state.rate_plan.known_key_marker(digest)
            state.limiter.mark(marker, int(state.known_keys.ttl), later=renewal)


def forget_key(state: MonitorState, digest: str | None) -> None:
    """A key that failed a check is no longer known, here or in the shared marker."""
    if not digest:
        return
    state.known_keys.discard(digest)
    if state.ratelimits.enabled and state.rate_plan is not None and state.limiter is not None:
        state.limiter.unmark(state.rate_plan.known_key_marker(digest))
