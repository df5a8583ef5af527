"""Counting rate limits: in Redis with one round trip a request, or in process memory.

The ``limits`` library provides the storages (Redis, memory) and the three
strategies (fixed window, moving window, sliding window counter). This module
adds what a request needs on top of them:

- all the limits that apply to a request are checked together, in order,
  stopping at the first one that refuses (the limits after it are not used
  up). With Redis and the fixed window (the default) that is a single Lua
  script, so a request costs one round trip whatever the number of limits,
  and the script's answer also gives what the ``X-RateLimit-*`` headers show
  (no second read). The other strategies go through ``limits`` one limit at
  a time;
- a limit can be looked at without being used up (``Check(hit=False)``; the
  ``login`` limit, which is deducted when a key check fails, with
  :meth:`Limiter.deduct`), and skipped while a marker key exists
  (``Check(unless=...)``: the ``login`` check of a key some process accepted
  lately, marked with :meth:`Limiter.mark`), in the same round trip;
- when Redis fails, counting goes on in process memory with the same limits,
  and Redis is probed again after 1, 2, 4, ... 32 s (on incoming requests);
  once it answers, counting returns to it and the memory counts are dropped.
  Every storage error counts in ``ratelimit_backend_errors_total``; the outage
  is logged once when it starts and once when it ends.

    limiter = Limiter("monitored+redis://localhost:6379/0", "fixed-window")
    item = parse_many("20/minute")[0]
    results = limiter.evaluate([Check("ticket_create", item, ("app", "key:ab12", "ticket_create"))])
    if not results[-1].allowed: ...  # refused: results[-1].remaining, .reset

Keys are those ``limits`` itself uses (``LIMITS:LIMITER/<prefix>/<who>/<action>/
<amount>/<multiples>/<granularity>``), so both paths count the same keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, ParamSpec, Protocol, TypeVar

from limits import RateLimitItem
from limits.storage import MemoryStorage, RedisStorage, Storage, storage_from_string
from limits.strategies import STRATEGIES, RateLimiter
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ticketing.security.metrics import ratelimit_backend_errors

log = logging.getLogger(__name__)

#: Longest wait between two probes of a failed storage, in seconds.
MAX_PROBE_INTERVAL = 32.0
#: Markers waiting for the next check's script, at most (the oldest are dropped).
MAX_PENDING_MARKS = 1000
#: Packed check commands kept per process (one per caller and route kind in use).
PACKED_COMMANDS = 4096

P = ParamSpec("P")
T = TypeVar("T")


class Check(NamedTuple):
    """One limit to apply to the current request.

    ``identifiers`` name the counter (``limits``' ``key_for`` arguments):
    ``(key prefix, who, action)``. ``hit=False`` only looks: the request is
    refused when the limit is used up, but nothing is counted. ``known_key``
    is ``item.key_for(*identifiers)`` when the caller has it at hand already.
    ``unless`` names a marker (:meth:`Limiter.mark`): while it exists in the
    storage the check is skipped and passes.
    """

    action: str
    item: RateLimitItem
    identifiers: tuple[str, ...]
    hit: bool = True
    known_key: str | None = None
    unless: str | None = None

    @property
    def key(self) -> str:
        return self.known_key or self.item.key_for(*self.identifiers)


class Result(NamedTuple):
    """How a check went: allowed or not, what is left and when the window ends (Unix time).

    ``remaining`` and ``reset`` are None when they were not read (a limit that
    passed behind the first one, outside the single-script path).
    """

    check: Check
    allowed: bool
    remaining: int | None
    reset: float | None


# ------------------------------------------------------------------ Redis storage


class _Connection(Protocol):
    """What is used here of a redis-py connection (whose methods are not annotated)."""

    def pack_command(self, *args: Any) -> list[bytes]: ...

    def send_command(self, *args: Any) -> None: ...

    def send_packed_command(self, command: list[bytes]) -> None: ...

    def read_response(self) -> Any: ...

    def disconnect(self) -> None: ...


#: What a packed check command is kept under: (key, hit, unless) of each check.
_Signature = tuple[tuple[str, bool, str | None], ...]

# First the markers to set (ARGV[1] of them: KEYS[1..m], each for ARGV[1 + j]
# seconds), then for each limit (the next KEYS; four ARGV each: amount, window
# seconds, "1" to count a hit or "0" to look only, and the index in KEYS of a
# marker that skips the check, 0 for none) its count and the seconds left in
# its window (-1, -1 when skipped), stopping after the first limit that
# refuses. The counting is limits' own incr_expire. The check markers follow
# the limits' keys in KEYS.
_CHECK_FIXED_WINDOWS = """
local marks = tonumber(ARGV[1])
for j = 1, marks do
  redis.call("set", KEYS[j], 1, "EX", ARGV[1 + j])
end
local result = {}
for i = 1, (#ARGV - 1 - marks) / 4 do
  local key = KEYS[marks + i]
  local a = 1 + marks + 4 * (i - 1)
  local amount = tonumber(ARGV[a + 1])
  local hit = ARGV[a + 3] == "1"
  local unless = tonumber(ARGV[a + 4])
  local count
  if unless > 0 and redis.call("exists", KEYS[unless]) == 1 then
    result[#result + 1] = -1
    result[#result + 1] = -1
  elseif hit then
    count = redis.call("incrby", key, 1)
    if count == 1 then
      redis.call("expire", key, ARGV[a + 2])
    end
  else
    count = tonumber(redis.call("get", key) or "0")
  end
  if count then
    result[#result + 1] = count
    result[#result + 1] = redis.call("ttl", key)
    if (hit and count > amount) or (not hit and count >= amount) then
      break
    end
  end
end
return result
"""


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
            log.warning(
                "rate-limit storage unreachable (%s: %s); limits are counted per "
                "process until it answers again",
                what,
                exc or "ping failed",
            )

    def ok(self) -> None:
        if self.failing:
            with self._lock:
                was, self.failing = self.failing, False
            if was:
                log.warning("rate-limit storage answers again; limits are shared again")


class MonitoredRedisStorage(RedisStorage):
    """Redis storage for ``limits`` that counts and logs its errors, and checks
    several fixed-window limits in one round trip (:meth:`check_fixed_windows`).

    Registered for the ``monitored+redis://`` (``+rediss``, ``+redis+unix``)
    schemes; :func:`storage_uri` turns a Redis URL into one of these.
    """

    STORAGE_SCHEME = ["monitored+redis", "monitored+rediss", "monitored+redis+unix"]
    outage = _OutageLog()

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri.removeprefix("monitored+"), **options)
        self._check_sha = hashlib.sha1(_CHECK_FIXED_WINDOWS.encode()).hexdigest()
        self._idle: list[_Connection] = []
        self._pid = os.getpid()
        self._packed: dict[_Signature, list[bytes]] = {}

    def _watch(self, name: str, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``method(*args, **kwargs)`` (``name`` of the storage), its error counted and logged."""
        try:
            result = method(*args, **kwargs)
        except Exception as exc:
            self.outage.error(name, exc)
            raise
        self.outage.ok()
        return result

    def check_fixed_windows(
        self, checks: Sequence[Check], marks: Sequence[tuple[str, int]] = ()
    ) -> list[Result]:
        """Apply fixed-window ``checks`` in order in one script; stop at the first refusal.

        ``marks`` (marker key, seconds) are set first, in the same script.
        """
        command = self._check_command(checks, marks)
        try:
            try:
                answer = self._call(packed=command)
            except NoScriptError:  # a new or restarted Redis: load the script once
                self._call("SCRIPT", "LOAD", _CHECK_FIXED_WINDOWS)
                answer = self._call(packed=command)
        except Exception as exc:
            self.outage.error("check", exc)
            raise
        self.outage.ok()
        now = time.time()
        results = []
        # The script stops at the first refusal: the checks after it have no answer.
        for check, count, ttl in zip(checks, answer[0::2], answer[1::2], strict=False):
            if count < 0:  # skipped: its marker exists
                results.append(Result(check, True, None, None))
                continue
            amount = check.item.amount
            allowed = count <= amount if check.hit else count < amount
            results.append(Result(check, allowed, max(0, amount - count), now + max(ttl, 0)))
        return results

    def _check_command(
        self, checks: Sequence[Check], marks: Sequence[tuple[str, int]] = ()
    ) -> list[bytes]:
        """The packed ``EVALSHA`` of ``checks``, kept for the next request with the same ones.

        A caller's checks are the same from one request to the next (the same
        counters, amounts and markers), so the command is packed once for them
        rather than encoded argument by argument every time; at most
        :data:`PACKED_COMMANDS` of them are kept (all are dropped when full).
        A command that also sets ``marks`` (now and then) is packed each time.
        """
        signature: _Signature = tuple((check.key, check.hit, check.unless) for check in checks)
        packed = None if marks else self._packed.get(signature)
        if packed is not None:
            return packed
        keys = [self.prefixed_key(key) for key, _ in marks]
        args: list[Any] = [len(marks), *(seconds for _, seconds in marks)]
        keys += [self.prefixed_key(c.key) for c in checks]
        for check in checks:
            marker = 0
            if check.unless:
                keys.append(self.prefixed_key(check.unless))
                marker = len(keys)
            args += [check.item.amount, check.item.get_expiry(), 1 if check.hit else 0, marker]
        connection = self._connection()
        try:
            packed = connection.pack_command("EVALSHA", self._check_sha, len(keys), *keys, *args)
        finally:
            self._idle.append(connection)
        if marks:
            return packed
        if len(self._packed) >= PACKED_COMMANDS:
            self._packed.clear()
        self._packed[signature] = packed
        return packed

    def _call(self, *command: Any, packed: list[bytes] | None = None) -> Any:
        """Send one command (or one already ``packed``) on a connection of our own and
        read its answer.

        The per-request script goes through these connections rather than
        redis-py's pool, which spends more CPU than the round trip itself on
        its bookkeeping. Like the pool's clients, a connection error is retried
        once on a fresh connection (a Redis restart leaves stale connections
        behind); a connection that failed is never reused.
        """
        for attempt in (1, 2):
            connection = self._connection()
            try:
                if packed is None:
                    connection.send_command(*command)
                else:
                    connection.send_packed_command(packed)
                answer = connection.read_response()
            except ResponseError:  # an error answer: the connection itself is fine
                self._idle.append(connection)
                raise
            except (RedisConnectionError, RedisTimeoutError):
                connection.disconnect()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                connection.disconnect()
                raise
            self._idle.append(connection)
            return answer
        raise AssertionError("unreachable")

    def _connection(self) -> _Connection:
        if self._pid != os.getpid():  # forked: the parent's connections are not ours
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            pool = self.storage.connection_pool
            connection: _Connection = pool.connection_class(**pool.connection_kwargs)
            return connection

    def mark(self, key: str, seconds: int) -> None:
        """Set the marker ``key`` for ``seconds`` (see :attr:`Check.unless`)."""
        try:
            self._call("SET", self.prefixed_key(key), 1, "EX", seconds)
        except Exception as exc:
            self.outage.error("mark", exc)
            raise
        self.outage.ok()

    def unmark(self, key: str) -> None:
        try:
            self._call("DEL", self.prefixed_key(key))
        except Exception as exc:
            self.outage.error("unmark", exc)
            raise
        self.outage.ok()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._watch("incr", super().incr, key, expiry, amount)

    def get(self, key: str) -> int:
        return self._watch("get", super().get, key)

    def get_expiry(self, key: str) -> float:
        return self._watch("get_expiry", super().get_expiry, key)

    def clear(self, key: str) -> None:
        return self._watch("clear", super().clear, key)

    def acquire_entry(self, *args: Any, **kwargs: Any) -> bool:
        return self._watch("acquire_entry", super().acquire_entry, *args, **kwargs)

    def get_moving_window(self, *args: Any, **kwargs: Any) -> tuple[float, int]:
        return self._watch("get_moving_window", super().get_moving_window, *args, **kwargs)

    def acquire_sliding_window_entry(self, *args: Any, **kwargs: Any) -> bool:
        return self._watch(
            "acquire_sliding_window_entry", super().acquire_sliding_window_entry, *args, **kwargs
        )

    def get_sliding_window(self, *args: Any, **kwargs: Any) -> tuple[int, float, int, float]:
        return self._watch("get_sliding_window", super().get_sliding_window, *args, **kwargs)

    def check(self) -> bool:
        healthy = super().check()
        if healthy:
            self.outage.ok()
        else:
            self.outage.error("ping", None)
        return bool(healthy)


def storage_uri(url: str) -> str:
    """The storage URI to use: Redis URLs go through :class:`MonitoredRedisStorage`."""
    if url.split("://", 1)[0] in ("redis", "rediss", "redis+unix"):
        return "monitored+" + url
    return url


def storage_options(url: str, timeout: float) -> dict[str, Any]:
    """Short timeouts and a single immediate retry, so a dead Redis costs milliseconds."""
    if not url.startswith("monitored+"):
        return {}
    return {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
    }


# ------------------------------------------------------------------ the limiter


class Limiter:
    """Applies checks in the configured storage, or in memory while that storage fails."""

    def __init__(self, url: str, strategy: str, *, timeout: float = 0.5) -> None:
        uri = storage_uri(url)
        storage = storage_from_string(uri, **storage_options(uri, timeout))
        assert isinstance(storage, Storage)  # not an async one (the strategies assert it too)
        self.storage = storage
        self.strategy = strategy
        self._counter: RateLimiter = STRATEGIES[strategy](self.storage)
        #: The storage when all the checks of a request go in one script, else None.
        self._single_script = (
            storage
            if isinstance(storage, MonitoredRedisStorage) and strategy == "fixed-window"
            else None
        )
        self._can_fail = not isinstance(self.storage, MemoryStorage)
        self._memory = MemoryStorage()
        self._fallback: RateLimiter = STRATEGIES[strategy](self._memory)
        self._lock = threading.Lock()
        #: Markers to set with the next request's script (key: seconds).
        self._marks: dict[str, int] = {}
        self._marks_lock = threading.Lock()
        self._failed = False
        self._probe_at = 0.0
        self._probe_interval = 1.0

    @property
    def counting_in_memory(self) -> bool:
        """Whether the storage failed and this process counts on its own meanwhile."""
        return self._failed

    def evaluate(self, checks: Sequence[Check]) -> list[Result]:
        """Apply ``checks`` in order; the last result is the first refusal, if any.

        The first result carries ``remaining`` and ``reset`` (the header limit),
        and so does a refusal. Raises only when counting in memory fails too.
        """
        if not checks:
            return []
        if self._storage_usable():
            try:
                if self._single_script is not None:
                    marks = self._take_marks()
                    return self._single_script.check_fixed_windows(checks, marks)
                return _one_by_one(self._counter, checks, self._marked)
            except Exception:
                if not self._can_fail:
                    raise
                self._storage_failed()
        return _one_by_one(self._fallback, checks, None)

    def mark(self, key: str, seconds: int, *, later: bool = False) -> None:
        """Set a marker that skips the checks naming it (``Check.unless``), for all
        processes sharing the storage; nothing when counting in process memory.

        ``later``: the marker goes with this process's next check, in the same
        round trip, rather than costing one of its own (for renewing a marker
        that still lives: it lasts until then). Only on the one-script path;
        elsewhere it is set at once.
        """
        if later and self._single_script is not None:
            with self._marks_lock:
                self._marks[key] = seconds
                if len(self._marks) > MAX_PENDING_MARKS:  # a long outage: the oldest go
                    del self._marks[next(iter(self._marks))]
            return
        if isinstance(self.storage, MonitoredRedisStorage) and self._storage_usable():
            try:
                self.storage.mark(key, seconds)
            except Exception:
                self._storage_failed()

    def _take_marks(self) -> list[tuple[str, int]]:
        if not self._marks:
            return []
        with self._marks_lock:
            marks, self._marks = list(self._marks.items()), {}
        return marks

    def unmark(self, key: str) -> None:
        with self._marks_lock:
            self._marks.pop(key, None)
        if isinstance(self.storage, MonitoredRedisStorage) and self._storage_usable():
            try:
                self.storage.unmark(key)
            except Exception:
                self._storage_failed()

    def _marked(self, key: str) -> bool:
        if not isinstance(self.storage, MonitoredRedisStorage):
            return False
        return bool(self.storage.get(key))

    def deduct(self, check: Check) -> None:
        """Count one hit against ``check``'s limit (after the request, whatever it had left)."""
        if self._storage_usable():
            try:
                self._counter.hit(check.item, *check.identifiers)
                return
            except Exception:
                if not self._can_fail:
                    raise
                self._storage_failed()
        self._fallback.hit(check.item, *check.identifiers)

    def _storage_usable(self) -> bool:
        if not self._failed:
            return True
        now = time.monotonic()
        if now < self._probe_at or not self._lock.acquire(blocking=False):
            return False
        try:
            if not self._failed:
                return True
            if self.storage.check():
                self._failed = False
                self._memory.reset()
                return True
            self._probe_interval = min(self._probe_interval * 2, MAX_PROBE_INTERVAL)
            self._probe_at = time.monotonic() + self._probe_interval
            return False
        finally:
            self._lock.release()

    def _storage_failed(self) -> None:
        with self._lock:
            if not self._failed:
                self._failed = True
                self._probe_interval = 1.0
                self._probe_at = time.monotonic() + self._probe_interval


def _one_by_one(
    counter: RateLimiter, checks: Sequence[Check], marked: Callable[[str], bool] | None
) -> list[Result]:
    """Apply ``checks`` through a ``limits`` strategy, a call (or two) per limit."""
    results = []
    for index, check in enumerate(checks):
        if check.unless and marked is not None and marked(check.unless):
            results.append(Result(check, True, None, None))
            continue
        if check.hit:
            allowed = counter.hit(check.item, *check.identifiers)
        else:
            allowed = counter.test(check.item, *check.identifiers)
        remaining = reset = None
        if index == 0 or not allowed:
            reset, remaining = counter.get_window_stats(check.item, *check.identifiers)
        results.append(Result(check, allowed, remaining, reset))
        if not allowed:
            break
    return results
